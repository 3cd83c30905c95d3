package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/datasandbox/dsbx/client"
	"github.com/datasandbox/dsbx/server/tlstest"
	"github.com/datasandbox/dsbx/state/statetest"
)

// TestTLS serves HTTPS on loopback with a self-signed certificate: a
// client trusting it talks to the API (and sees HSTS), one that does not
// is refused with a hint, plain HTTP to the port gets no API answer, and
// TLS 1.1 is refused.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := tlstest.SelfSigned(t, dir)
	cfg, err := LoadTLS(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("MinVersion %x", cfg.MinVersion)
	}
	data := filepath.Join(dir, "data")
	srv, err := Open(context.Background(), Config{Data: data, State: statetest.URL(t, data), TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	addr := l.Addr().String()
	tok, _ := os.ReadFile(filepath.Join(data, AdminTokenFile))

	admin := client.New("https://"+addr, strings.TrimSpace(string(tok))).WithCAFile(certFile)
	if _, err := admin.Principals(context.Background()); err != nil {
		t.Fatalf("HTTPS client trusting the certificate: %v", err)
	}

	pem, _ := os.ReadFile(certFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get("https://" + addr + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Strict-Transport-Security") != HSTS {
		t.Fatalf("GET /v1/health over TLS: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}

	_, err = client.New("https://"+addr, "x").Principals(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--ca") {
		t.Fatalf("client without the CA: %v, want a certificate error mentioning --ca", err)
	}
	_, err = client.New("https://"+addr, "x").WithCAFile(filepath.Join(dir, "missing.pem")).Principals(context.Background())
	if err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("client with a missing CA file: %v, want an error naming it", err)
	}

	// Plain HTTP to the TLS port: no API answer.
	resp, err = http.Get("http://" + addr + "/v1/health")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(b), `"status"`) {
			t.Fatalf("plain HTTP to the TLS port answered %d %s", resp.StatusCode, b)
		}
	}

	// TLS 1.1 is refused.
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10})
	if err == nil {
		c.Close()
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}

func TestLoadTLSErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := tlstest.SelfSigned(t, dir)
	_, otherKey := tlstest.SelfSigned(t, t.TempDir())
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600)
	if cfg, err := LoadTLS("", ""); cfg != nil || err != nil {
		t.Fatalf("neither: %v, %v; want plain HTTP", cfg, err)
	}
	for _, c := range []struct {
		cert, key string
		want      []string
	}{
		{certFile, "", []string{"--tls-cert given without --tls-key"}},
		{"", keyFile, []string{"--tls-key given without --tls-cert"}},
		{filepath.Join(dir, "nope.pem"), keyFile, []string{"--tls-cert", "nope.pem"}},
		{certFile, filepath.Join(dir, "nope.pem"), []string{"--tls-key", "nope.pem"}},
		{garbage, keyFile, []string{"--tls-cert", garbage, "no PEM CERTIFICATE"}},
		{certFile, garbage, []string{"--tls-key", garbage, "no PEM PRIVATE KEY"}},
		{keyFile, certFile, []string{"--tls-cert", keyFile}},
		{certFile, otherKey, []string{certFile, otherKey}},
	} {
		_, err := LoadTLS(c.cert, c.key)
		if err == nil {
			t.Errorf("LoadTLS(%q, %q) succeeded", c.cert, c.key)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("LoadTLS(%q, %q) = %v, want it to mention %q", c.cert, c.key, err, w)
			}
		}
	}
}
