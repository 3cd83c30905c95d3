package audit

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ErrBadSignature is wrapped by errors from ParseCheckpoint and Verify when a
// checkpoint is not validly signed by the given key.
var ErrBadSignature = errors.New("audit: checkpoint signature does not verify with the given key")

// Checkpoint is the content of a C2SP tlog-checkpoint: the log's origin, its
// size and the RFC 6962 tree hash of its entries.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// String returns the checkpoint body: "<origin>\n<size>\n<base64 root>\n".
func (c Checkpoint) String() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
}

// ParseCheckpoint verifies the signed checkpoint note against vkey and returns
// its content; the checkpoint's origin must be the key's name.
func ParseCheckpoint(signed []byte, vkey string) (Checkpoint, error) {
	verifier, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: parse checkpoint: bad verifier key: %w", err)
	}
	n, err := note.Open(signed, note.VerifierList(verifier))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w (key %s): %v", ErrBadSignature, verifier.Name(), err)
	}
	c, err := parseCheckpointText(n.Text)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: parse checkpoint: %w", err)
	}
	if c.Origin != verifier.Name() {
		return Checkpoint{}, fmt.Errorf("audit: parse checkpoint: origin %q does not match key name %q", c.Origin, verifier.Name())
	}
	return c, nil
}

// parseCheckpointText parses a checkpoint body; extension lines after the
// root hash are allowed and ignored.
func parseCheckpointText(text string) (Checkpoint, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return Checkpoint{}, fmt.Errorf("want at least 3 lines, have %d", len(lines))
	}
	if lines[0] == "" {
		return Checkpoint{}, errors.New("empty origin")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("bad size %q", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("bad root hash %q", lines[2])
	}
	c := Checkpoint{Origin: lines[0], Size: size}
	copy(c.Root[:], root)
	return c, nil
}
