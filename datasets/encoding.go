package datasets

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// Text encodings a CSV file may be in. GBK files are read as GB18030, its
// superset, and converted to UTF-8 before parsing.
const (
	EncodingUTF8 = "utf-8"
	EncodingGBK  = "gbk"
)

// sniffSize is how much of a file detectEncoding looks at.
const sniffSize = 4 << 20

// detectEncoding decides whether the CSV file at path is UTF-8 or GBK from
// its first bytes: valid UTF-8 is UTF-8; otherwise it must decode as GB18030
// without a replacement character.
func detectEncoding(path, source string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, sniffSize)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", err
	}
	buf = buf[:n]
	if n == sniffSize {
		// Look at whole lines only, so no character is cut in two.
		if i := bytes.LastIndexByte(buf, '\n'); i > 0 {
			buf = buf[:i]
		}
	}
	if utf8.Valid(buf) {
		return EncodingUTF8, nil
	}
	out, err := simplifiedchinese.GB18030.NewDecoder().Bytes(buf)
	if err != nil || bytes.ContainsRune(out, utf8.RuneError) {
		return "", inputErrorf("%s: text is neither UTF-8 nor GBK; save it as UTF-8 and import again", source)
	}
	return EncodingGBK, nil
}

// transcodeGBK converts the GBK file at src to UTF-8 in dst, reporting bytes
// read. Invalid GBK anywhere in the file fails the conversion.
func transcodeGBK(ctx context.Context, src, dst, source string, progress func(done int64)) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	w := bufio.NewWriterSize(out, 1<<20)
	dec := simplifiedchinese.GB18030.NewDecoder().Reader(&countingReader{r: in, ctx: ctx, progress: progress})
	buf := make([]byte, 1<<20)
	var line int64 = 1
	for {
		n, rerr := dec.Read(buf)
		chunk := buf[:n]
		if i := bytes.IndexRune(chunk, utf8.RuneError); i >= 0 {
			return inputErrorf("%s: line %d is not valid GBK; check the file's encoding", source, line+int64(bytes.Count(chunk[:i], []byte{'\n'})))
		}
		line += int64(bytes.Count(chunk, []byte{'\n'}))
		if _, err := w.Write(chunk); err != nil {
			return err
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return out.Close()
}

// countingReader reports the bytes read through it and stops when its
// context is done.
type countingReader struct {
	r        io.Reader
	ctx      context.Context
	n        int64
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, fmt.Errorf("import cancelled: %w", err)
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil {
		c.progress(c.n)
	}
	return n, err
}
