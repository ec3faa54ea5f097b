package deploy

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

var metricRE = regexp.MustCompile(`mmreplicate_[a-z0-9_]+`)

// promtool is Debian's promtool (package prometheus); under CI its absence fails.
func promtool(t *testing.T) string { return testenv.Tool(t, "promtool", "prometheus") }

// TestAlertRules: promtool accepts the rules and their unit tests pass (each alert that
// must fire fires, with its labels and text, and the quiet cases stay quiet).
func TestAlertRules(t *testing.T) {
	pt := promtool(t)
	for _, args := range [][]string{{"check", "rules", "mmreplicate-alerts.yml"}, {"test", "rules", "mmreplicate-alerts.test.yml"}} {
		cmd := exec.Command(pt, args...)
		cmd.Dir = "monitoring"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// exportedMetrics are the metric names the daemon's code declares (outside tests).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	err := filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "deploy" || d.Name() == "e2e" || strings.HasPrefix(d.Name(), ".")) && p != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range regexp.MustCompile(`"(mmreplicate_[a-z0-9_]+)"`).FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 10 {
		t.Fatalf("found only %d metric names in the code: %v", len(names), names)
	}
	return names
}

// TestMonitoringMetricsExist: the rules and the dashboard use only metrics the daemon
// exports; the dashboard is a loadable dashboard whose every panel queries something.
func TestMonitoringMetricsExist(t *testing.T) {
	have := exportedMetrics(t)
	used := map[string][]string{} // metric -> where

	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal([]byte(read(t, "monitoring/mmreplicate-alerts.yml")), &rules); err != nil {
		t.Fatalf("alert rules: %v", err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			for _, m := range metricRE.FindAllString(r.Expr, -1) {
				used[m] = append(used[m], "alert "+r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatal("no alert rules")
	}

	var dash struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal([]byte(read(t, "monitoring/mmreplicate-dashboard.json")), &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" || dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard lacks uid, title or panels")
	}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, q := range p.Targets {
			ms := metricRE.FindAllString(q.Expr, -1)
			if len(ms) == 0 {
				t.Errorf("panel %q: query %q uses no mmreplicate metric", p.Title, q.Expr)
			}
			for _, m := range ms {
				used[m] = append(used[m], "panel "+p.Title)
			}
		}
	}
	for _, v := range dash.Templating.List {
		for _, m := range metricRE.FindAllString(v.Definition, -1) {
			used[m] = append(used[m], "variable")
		}
	}
	for m, where := range used {
		if !have[m] {
			t.Errorf("%s (used by %s) is not a metric the daemon exports", m, strings.Join(where, ", "))
		}
	}
	var unused []string
	for m := range have {
		if len(used[m]) == 0 {
			unused = append(unused, m)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Logf("metrics neither the dashboard nor the rules show: %s", strings.Join(unused, ", "))
	}
}
