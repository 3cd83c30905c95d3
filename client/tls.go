package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// WithCAFile returns c trusting, besides the system's roots, the CA
// certificates in the PEM file path: for a server serving HTTPS with a
// self-signed certificate or a private CA. If the file cannot be read or
// holds no certificate, every request fails with an error naming it.
func (c *Client) WithCAFile(path string) *Client {
	pem, err := os.ReadFile(path)
	if err == nil {
		err = c.TrustCA(pem)
	}
	if err != nil {
		c.http = &http.Client{Transport: failing{fmt.Errorf("CA file %s (--ca or DSBX_CA): %w", path, err)}}
	}
	return c
}

// TrustCA makes c trust, besides the system's roots, the CA certificates
// in pem; c talks TLS 1.2 or later.
func (c *Client) TrustCA(pem []byte) error {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return errors.New("holds no PEM certificate")
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c.http = &http.Client{Transport: t}
	return nil
}

// failing is a transport whose every request fails with err.
type failing struct{ err error }

func (f failing) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }

// hint says what to do about a transport error, beyond checking the server
// runs.
func hint(err error) string {
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknown) || errors.As(err, &verify) {
		return "the server's certificate is not trusted: pass --ca FILE or set DSBX_CA to the CA that signed it"
	}
	return "is 'dsbx serve' running there? set --server"
}
