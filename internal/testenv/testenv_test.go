package testenv

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestVersityBinaryOverride(t *testing.T) {
	t.Setenv("MMR_VERSITYGW", filepath.Join(t.TempDir(), "no-such-binary"))
	if _, err := VersityBinary(); err == nil || !strings.Contains(err.Error(), "MMR_VERSITYGW") {
		t.Fatalf("VersityBinary with a wrong MMR_VERSITYGW: err %v, want an error naming it", err)
	}
}

func TestStartS3StopRestart(t *testing.T) {
	srv := StartS3(t)
	srv.CreateBucket(t, "bkt")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	client, err := srv.client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("bkt"), Key: aws.String("a/b"), Body: strings.NewReader("hello"),
	}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}

	srv.Stop()
	addr := strings.TrimPrefix(srv.Endpoint, "http://")
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Stop", addr)
	}
	srv.Stop() // idempotent

	srv.Restart(t)
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("a/b")})
	if err != nil {
		t.Fatalf("GetObject after Restart: %v", err)
	}
	body, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(body) != "hello" {
		t.Fatalf("GetObject after Restart = %q, want hello", body)
	}
}
