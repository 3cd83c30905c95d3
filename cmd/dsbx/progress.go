package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/datasandbox/dsbx/datasets"
)

// progressBar draws an import's progress on one terminal line: a bar for
// phases that know their size (upload, transcode), the phase and elapsed
// time for the others.
type progressBar struct {
	w     io.Writer
	on    bool
	start time.Time
	phase string
	since time.Time
	last  time.Time
	drawn bool
}

func newProgressBar(w io.Writer, mode string) *progressBar {
	on := mode == "always"
	if mode == "auto" {
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				on = true
			}
		}
	}
	now := time.Now()
	return &progressBar{w: w, on: on, start: now, since: now}
}

func (b *progressBar) step(st datasets.Step) {
	if !b.on {
		return
	}
	now := time.Now()
	if st.Phase != b.phase {
		if b.drawn {
			fmt.Fprintf(b.w, "\r%-78s\r%s done in %s\n", "", b.phase, now.Sub(b.since).Round(10*time.Millisecond))
		}
		b.phase, b.since = st.Phase, now
	} else if now.Sub(b.last) < 100*time.Millisecond && st.Done < st.Total {
		return
	}
	b.last, b.drawn = now, true
	line := fmt.Sprintf("%-10s", st.Phase)
	if st.Total > 0 && st.Done > 0 {
		frac := float64(st.Done) / float64(st.Total)
		n := int(frac * 30)
		rate := float64(st.Done) / max(now.Sub(b.since).Seconds(), 1e-3)
		line += fmt.Sprintf(" [%s%s] %3.0f%% %s/%s %s/s", strings.Repeat("#", n), strings.Repeat(".", 30-n), 100*frac, size(st.Done), size(st.Total), size(int64(rate)))
	} else {
		line += " …"
	}
	fmt.Fprintf(b.w, "\r%-78s", line)
}

// done ends the bar's line.
func (b *progressBar) done() {
	if b.on && b.drawn {
		fmt.Fprintf(b.w, "\r%-78s\r%s done in %s; total %s\n", "", b.phase, time.Since(b.since).Round(10*time.Millisecond), time.Since(b.start).Round(10*time.Millisecond))
	}
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
