package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/server"
	"github.com/datasandbox/dsbx/server/tlstest"
)

// syncBuffer is a buffer a running command writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeTLS runs 'dsbx serve --tls-cert --tls-key' and drives it with
// the CLI over HTTPS: --ca or DSBX_CA trusts the self-signed certificate,
// without it the CLI says to pass --ca.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := tlstest.SelfSigned(t, dir)
	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	root := newRoot()
	root.SetArgs([]string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--tls-cert", certFile, "--tls-key", keyFile})
	root.SetOut(&out)
	root.SetErr(&out)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop")
		}
	})
	banner := regexp.MustCompile(`dsbx serving https://(127\.0\.0\.1:\d+) `)
	var addr string
	for deadline := time.Now().Add(60 * time.Second); addr == ""; time.Sleep(20 * time.Millisecond) {
		if m := banner.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no https:// banner: %q", out.String())
		}
	}
	tok, err := os.ReadFile(filepath.Join(data, server.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	e := &e2e{base: "https://" + addr, admin: strings.TrimSpace(string(tok)), ctx: context.Background()}
	if got := e.must(t, "principal", "list", "--token", e.admin, "--ca", certFile); !strings.Contains(got, "admin") {
		t.Fatalf("principal list over HTTPS with --ca: %q", got)
	}
	e.fails(t, "no CA", []string{"--ca", "DSBX_CA"}, "principal", "list", "--token", e.admin)
	e.fails(t, "missing CA file", []string{"nope.pem"}, "principal", "list", "--token", e.admin, "--ca", filepath.Join(dir, "nope.pem"))
	t.Setenv("DSBX_CA", certFile)
	e.must(t, "principal", "list", "--token", e.admin)

	// Plain HTTP to the port gets no API answer.
	if resp, err := http.Get("http://" + addr + "/v1/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP to the HTTPS port answered 200")
		}
	}
	// TLS 1.1 is refused.
	if c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10}); err == nil {
		c.Close()
		t.Fatal("TLS 1.1 accepted")
	}
}

// TestServeFlags: TLS needs both files, bad files are named, and the
// limits' defaults are those documented.
func TestServeFlags(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := tlstest.SelfSigned(t, dir)
	run := func(args ...string) error {
		root := newRoot()
		root.SetArgs(append([]string{"serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data")}, args...))
		root.SetOut(&bytes.Buffer{})
		root.SetErr(&bytes.Buffer{})
		return root.ExecuteContext(context.Background())
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", certFile}, "--tls-cert given without --tls-key"},
		{[]string{"--tls-key", keyFile}, "--tls-key given without --tls-cert"},
		{[]string{"--tls-cert", filepath.Join(dir, "nope.pem"), "--tls-key", keyFile}, "nope.pem"},
		{[]string{"--tls-cert", keyFile, "--tls-key", keyFile}, keyFile},
		{[]string{"--rate-limit", "-1"}, "cannot be negative"},
	} {
		if err := run(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve %v: %v, want an error mentioning %q", c.args, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("a refused serve created its data directory")
	}
	flags := serveCmd().Flags()
	for name, want := range map[string]string{"max-open-jobs": "20", "rate-limit": "20", "rate-burst": "40"} {
		if got := flags.Lookup(name).DefValue; got != want {
			t.Errorf("--%s defaults to %s, want %s", name, got, want)
		}
	}
}
