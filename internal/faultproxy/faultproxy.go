// Package faultproxy is an HTTP reverse proxy for tests that sits in front of a real S3
// server and misbehaves on demand: it answers 500 or 503 SlowDown, holds requests without
// answering, resets connections, or applies a request upstream and then drops the answer.
// A real server cannot be made to do these things at a chosen moment, and a fake server
// would not prove that the client copes with the real one.
//
// Requests that pass are forwarded unchanged, Host header included: SigV4 signs the host
// the client addressed (the proxy's host:port), and the server checks the signature
// against the Host header it receives, so rewriting it would turn every request into a
// SignatureDoesNotMatch.
package faultproxy

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what the proxy does with a request.
type Mode int

const (
	// Pass forwards the request and its answer unchanged.
	Pass Mode = iota
	// Error500 answers 500 InternalError without contacting the server.
	Error500
	// Error503SlowDown answers 503 SlowDown, the throttling answer of S3.
	Error503SlowDown
	// Timeout reads the request and never answers. The request ends when the client
	// gives up; should the client never do so, the proxy resets the connection after
	// Options.MaxHold so that a test cannot hang.
	Timeout
	// Reset resets the TCP connection (RST) without answering or contacting the server.
	Reset
	// DropResponse forwards the request, so the server applies it, then resets the
	// connection instead of passing the answer on: the client sees a failure for a
	// request that in fact succeeded, the case that tests idempotent retries.
	DropResponse
)

// String names the mode in logs and test output.
func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Error500:
		return "500"
	case Error503SlowDown:
		return "503-slowdown"
	case Timeout:
		return "timeout"
	case Reset:
		return "reset"
	case DropResponse:
		return "drop-response"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// DefaultMaxHold bounds how long Timeout holds a request when Options.MaxHold is zero.
const DefaultMaxHold = 30 * time.Second

// Options tune a Proxy. Zero values take the defaults.
type Options struct {
	// MaxHold bounds how long Timeout holds a request before resetting its connection.
	MaxHold time.Duration
	// Seed makes FailRatio's choices repeatable; 0 picks a random seed.
	Seed uint64

	// rewriteHost makes the proxy send the upstream's address as Host, which is what a
	// naive proxy does; only this package's tests set it, to show why it must not.
	rewriteHost bool
}

// Counts are the requests of one kind the proxy has seen and how many it made fail.
type Counts struct {
	Seen   int64
	Failed int64
}

// Stats is a snapshot of the proxy's counters.
type Stats struct {
	Counts
	// ByMethod splits the counts by HTTP method ("PUT", "GET", ...).
	ByMethod map[string]Counts
	// ByMode counts the failed requests by the mode that failed them.
	ByMode map[Mode]int64
	// GaveUp counts Timeout requests the client abandoned before MaxHold.
	GaveUp int64
	// HeldToLimit counts Timeout requests the client was still waiting on when MaxHold
	// passed (the proxy then reset the connection).
	HeldToLimit int64
}

// Proxy is a running fault-injecting reverse proxy on 127.0.0.1.
type Proxy struct {
	opts     Options
	ln       net.Listener
	srv      *http.Server
	rp       *httputil.ReverseProxy
	closing  chan struct{}
	inflight sync.WaitGroup // handlers, so that Close returns only once they are done

	mu          sync.Mutex
	closed      bool // guards inflight.Add against a concurrent Close
	mode        Mode
	next        int  // requests left to fail with nextMode
	nextMode    Mode // mode of FailNext
	ratio       float64
	ratioMode   Mode
	rnd         *rand.Rand
	byMethod    map[string]*Counts
	byMode      map[Mode]int64
	gaveUp      atomic.Int64
	heldToLimit atomic.Int64
}

// New starts a proxy on 127.0.0.1 at a random port in front of upstream (a base URL
// such as "http://127.0.0.1:7070"), in Pass mode.
func New(upstream string, o Options) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: upstream %q is not a base URL", upstream)
	}
	if o.MaxHold <= 0 {
		o.MaxHold = DefaultMaxHold
	}
	seed := o.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &Proxy{opts: o, ln: ln, closing: make(chan struct{}),
		rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), byMethod: map[string]*Counts{}, byMode: map[Mode]int64{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			if !o.rewriteHost {
				pr.Out.Host = pr.In.Host
			}
		},
		// Compression off: the transport would otherwise add Accept-Encoding and
		// decode the answer, so neither side would see what the other sent.
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			DisableCompression:  true,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// The upstream is down (a test stopped it): a gateway error, as a real
			// load balancer would give.
			writeS3Error(w, r, http.StatusBadGateway, "BadGateway", "faultproxy: upstream: "+err.Error())
		},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is the proxy's base URL, to use as the client's S3 endpoint.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetMode sets what happens to requests that FailNext and FailRatio leave alone.
func (p *Proxy) SetMode(m Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
}

// FailNext makes the next n requests fail with m, ahead of FailRatio and the mode;
// n <= 0 cancels an earlier FailNext.
func (p *Proxy) FailNext(n int, m Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next, p.nextMode = max(n, 0), m
}

// FailRatio makes each request fail with m with probability ratio (1 fails every one),
// ahead of the mode; ratio <= 0 turns it off.
func (p *Proxy) FailRatio(ratio float64, m Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ratio, p.ratioMode = ratio, m
}

// Stats returns the counters so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{ByMethod: map[string]Counts{}, ByMode: map[Mode]int64{}, GaveUp: p.gaveUp.Load(), HeldToLimit: p.heldToLimit.Load()}
	for m, c := range p.byMethod {
		s.ByMethod[m] = *c
		s.Seen += c.Seen
		s.Failed += c.Failed
	}
	for m, n := range p.byMode {
		s.ByMode[m] = n
	}
	return s
}

// String sums the counters up in one line, for test logs.
func (s Stats) String() string {
	methods := make([]string, 0, len(s.ByMethod))
	for m := range s.ByMethod {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	out := fmt.Sprintf("%d requests, %d failed", s.Seen, s.Failed)
	for _, m := range methods {
		c := s.ByMethod[m]
		out += fmt.Sprintf("; %s %d/%d failed", m, c.Failed, c.Seen)
	}
	for m := Error500; m <= DropResponse; m++ {
		if n := s.ByMode[m]; n > 0 {
			out += fmt.Sprintf("; %s %d", m, n)
		}
	}
	if s.GaveUp+s.HeldToLimit > 0 {
		out += fmt.Sprintf("; timeouts: client gave up %d, held to the limit %d", s.GaveUp, s.HeldToLimit)
	}
	return out
}

// Close stops the proxy: held requests end at once and open connections are closed.
// Closing a closed proxy does nothing.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	close(p.closing)
	err := p.srv.Close()
	p.inflight.Wait()
	return err
}

// decide picks the request's fate and counts it. A request that arrives while the proxy
// closes is reset and not counted; ok is false then.
func (p *Proxy) decide(method string) (m Mode, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return Reset, false
	}
	p.inflight.Add(1)
	m = p.mode
	switch {
	case p.next > 0:
		p.next--
		m = p.nextMode
	case p.ratio > 0 && p.rnd.Float64() < p.ratio:
		m = p.ratioMode
	}
	c := p.byMethod[method]
	if c == nil {
		c = &Counts{}
		p.byMethod[method] = c
	}
	c.Seen++
	if m != Pass {
		c.Failed++
		p.byMode[m]++
	}
	return m, true
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	m, ok := p.decide(r.Method)
	if !ok {
		reset(w)
		return
	}
	defer p.inflight.Done()
	switch m {
	case Pass:
		p.rp.ServeHTTP(w, r)
	case Error500:
		drain(r)
		writeS3Error(w, r, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
	case Error503SlowDown:
		drain(r)
		writeS3Error(w, r, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	case Timeout:
		// The whole body is read first, like a server that took the upload and then
		// stalled; it also lets the HTTP server notice when the client hangs up.
		drain(r)
		select {
		case <-r.Context().Done():
			p.gaveUp.Add(1)
		case <-time.After(p.opts.MaxHold):
			p.heldToLimit.Add(1)
			reset(w)
		case <-p.closing:
			reset(w)
		}
	case Reset:
		reset(w)
	case DropResponse:
		rec := &discard{header: http.Header{}}
		p.rp.ServeHTTP(rec, r)
		reset(w)
	}
}

// drain reads what is left of the request body (bounded), as a server does before
// answering, so that the connection stays usable for the client's next request.
func drain(r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 256<<20))
}

// reset closes the client's connection with a TCP RST (linger 0) instead of an orderly
// FIN, the abrupt end a crashed server or a middlebox gives.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("faultproxy: connection cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// writeS3Error answers like S3 does: the status and an XML error document (no body for
// HEAD, whose errors S3 gives by status alone).
func writeS3Error(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>%s</Code><Message>%s</Message><Resource>%s</Resource><RequestId>faultproxy</RequestId></Error>`,
		code, xmlEscape(msg), xmlEscape(r.URL.Path))
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// discard takes the upstream's answer in DropResponse mode, which never reaches the
// client.
type discard struct {
	header http.Header
}

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}
