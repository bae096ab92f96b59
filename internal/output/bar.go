package output

import (
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// ProgressBar shows targets done out of total and the elapsed time. It is
// meant for a terminal; callers decide whether one is attached.
type ProgressBar struct {
	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

// NewProgressBar draws a bar for total targets on w.
func NewProgressBar(w io.Writer, total int, color bool) *ProgressBar {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("targets"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionEnableColorCodes(color),
	}
	return &ProgressBar{bar: progressbar.NewOptions(total, opts...)}
}

// Clear lifts the bar off the screen so a line can be printed.
func (p *ProgressBar) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.bar.Clear() // only fails when the terminal write fails
}

// Add records one more finished target and redraws.
func (p *ProgressBar) Add() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.bar.Add(1)
}

// Done removes the bar for good.
func (p *ProgressBar) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.bar.Finish()
	_ = p.bar.Clear()
}
