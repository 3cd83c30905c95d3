package audit

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

const (
	signingKeyFile  = "signing.key"
	verifierKeyFile = "verifier.key"
)

// validOrigin reports whether origin can name both a checkpoint and a note
// key: non-empty, valid UTF-8, without spaces, newlines or '+'.
func validOrigin(origin string) bool {
	return origin != "" && utf8.ValidString(origin) &&
		strings.IndexFunc(origin, unicode.IsSpace) < 0 && !strings.Contains(origin, "+")
}

// loadKeys reads the log's key pair from dir, generating and storing a new
// one if there is none yet and the log is still empty.
func loadKeys(dir, origin string, logEmpty bool) (note.Signer, string, error) {
	skeyPath := filepath.Join(dir, signingKeyFile)
	vkeyPath := filepath.Join(dir, verifierKeyFile)

	skeyBytes, err := os.ReadFile(skeyPath)
	if errors.Is(err, fs.ErrNotExist) {
		if !logEmpty {
			return nil, "", fmt.Errorf("%s is missing but the log has entries", signingKeyFile)
		}
		skey, vkey, err := note.GenerateKey(rand.Reader, origin)
		if err != nil {
			return nil, "", fmt.Errorf("generate key: %w", err)
		}
		// The verifier key goes first: a crash in between leaves no
		// signing key, so the next Open simply generates a new pair.
		if err := writeFileAtomic(vkeyPath, []byte(vkey+"\n"), 0o644); err != nil {
			return nil, "", err
		}
		if err := writeFileAtomic(skeyPath, []byte(skey+"\n"), 0o600); err != nil {
			return nil, "", err
		}
		skeyBytes = []byte(skey)
	} else if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", signingKeyFile, err)
	}

	signer, err := note.NewSigner(strings.TrimSpace(string(skeyBytes)))
	if err != nil {
		return nil, "", fmt.Errorf("parse %s: %w", signingKeyFile, err)
	}
	if signer.Name() != origin {
		return nil, "", fmt.Errorf("%s belongs to origin %q, not %q", signingKeyFile, signer.Name(), origin)
	}
	vkeyBytes, err := os.ReadFile(vkeyPath)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", verifierKeyFile, err)
	}
	vkey := strings.TrimSpace(string(vkeyBytes))
	if err := checkKeyPair(signer, vkey); err != nil {
		return nil, "", err
	}
	return signer, vkey, nil
}

// checkKeyPair makes sure vkey verifies signatures made by signer.
func checkKeyPair(signer note.Signer, vkey string) error {
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return fmt.Errorf("parse %s: %w", verifierKeyFile, err)
	}
	probe := []byte("audit key pair check\n")
	sig, err := signer.Sign(probe)
	if err != nil {
		return fmt.Errorf("sign probe: %w", err)
	}
	if verifier.Name() != signer.Name() || verifier.KeyHash() != signer.KeyHash() || !verifier.Verify(probe, sig) {
		return fmt.Errorf("%s does not match %s", verifierKeyFile, signingKeyFile)
	}
	return nil
}

// writeFileAtomic writes data to path through a synced temporary file and a
// rename, then syncs the directory.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	err = tmp.Chmod(perm)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// syncDir fsyncs a directory so that new names in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
