package server

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// LoadTLS reads the certificate chain and private key (PEM files) to serve
// HTTPS with: both or neither ("" for both gives nil, plain HTTP). The
// configuration accepts TLS 1.2 and later only.
func LoadTLS(certFile, keyFile string) (*tls.Config, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "":
		return nil, errors.New("--tls-key given without --tls-cert: HTTPS needs both the certificate and its key (or neither, for plain HTTP)")
	case keyFile == "":
		return nil, errors.New("--tls-cert given without --tls-key: HTTPS needs both the certificate and its key (or neither, for plain HTTP)")
	}
	certPEM, err := readPEM(certFile, "--tls-cert", "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	keyPEM, err := readPEM(keyFile, "--tls-key", "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s and --tls-key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// readPEM reads file, which must hold a PEM block whose type ends in want.
func readPEM(file, flag, want string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%s %s holds no PEM %s block", flag, file, want)
		}
		if len(block.Type) >= len(want) && block.Type[len(block.Type)-len(want):] == want {
			return b, nil
		}
	}
}
