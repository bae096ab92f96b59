package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strings"
)

const (
	plotWidth  = 1200 // pixels of the plot area
	plotHeight = 260  // of each panel
	marginL    = 70
	marginR    = 20
	marginT    = 50
	panelGap   = 60
	marginB    = 50
	zoomMax    = 250.0
)

var (
	white  = color.RGBA{255, 255, 255, 255}
	black  = color.RGBA{0, 0, 0, 255}
	grid   = color.RGBA{225, 225, 225, 255}
	colors = []color.RGBA{{31, 119, 180, 255}, {255, 127, 14, 255}, {214, 39, 40, 255}}
)

// plot draws runs per second over time for the given results (three at
// most): a full-scale panel and a zoomed one.
func plot(path string, p params, rs []*result) error {
	w := marginL + plotWidth + marginR
	h := marginT + 2*plotHeight + panelGap + marginB
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fill(img, img.Bounds(), white)
	full := 0.0
	for _, r := range rs {
		for _, x := range r.e.starts {
			full = max(full, float64(x))
		}
	}
	full = niceCeil(full)
	top2 := marginT + plotHeight + panelGap
	panel(img, p, rs, marginT, full, "RUNS/S, FULL SCALE")
	panel(img, p, rs, top2, zoomMax, "RUNS/S, 0-250 (CRON CLIPPED)")
	// Legend.
	x := marginL
	for i, r := range rs {
		fill(img, image.Rect(x, 12, x+24, 24), colors[i])
		x += 30
		x = text(img, x, 12, strings.ToUpper(r.short), black, 2) + 30
	}
	text(img, marginL+plotWidth/2-60, h-22, "TIME (MINUTES)", black, 2)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// panel draws one panel whose plot area starts at y = top.
func panel(img *image.RGBA, p params, rs []*result, top int, ymax float64, title string) {
	bottom := top + plotHeight
	// Grid and axes.
	for i := 0; i <= 5; i++ {
		v := ymax * float64(i) / 5
		y := bottom - int(float64(plotHeight)*float64(i)/5)
		fill(img, image.Rect(marginL, y, marginL+plotWidth, y+1), grid)
		label := fmt.Sprintf("%.0f", v)
		text(img, marginL-8-len(label)*8, y-5, label, black, 2)
	}
	minutes := p.seconds / 60
	for m := 0; m <= minutes; m += 10 {
		x := marginL + int(float64(plotWidth)*float64(m*60)/float64(p.seconds))
		fill(img, image.Rect(x, top, x+1, bottom), grid)
		label := fmt.Sprint(m)
		text(img, x-len(label)*4, bottom+6, label, black, 2)
	}
	fill(img, image.Rect(marginL, top, marginL+1, bottom+1), black)
	fill(img, image.Rect(marginL, bottom, marginL+plotWidth, bottom+1), black)
	text(img, marginL+6, top-14, title, black, 2)
	// The series, drawn so that later ones are on top: each pixel column
	// spans seconds/plotWidth seconds and shows the range of counts in it.
	per := float64(p.seconds) / plotWidth
	for i := len(rs) - 1; i >= 0; i-- {
		c := colors[i]
		prevLo, prevHi := -1, -1
		for px := range plotWidth {
			s0, s1 := int(float64(px)*per), int(float64(px+1)*per)
			lo, hi := math.Inf(1), math.Inf(-1)
			for s := s0; s < s1 && s < len(rs[i].e.starts); s++ {
				v := float64(rs[i].e.starts[s])
				lo, hi = min(lo, v), max(hi, v)
			}
			if math.IsInf(lo, 1) {
				continue
			}
			ylo := bottom - int(math.Round(float64(plotHeight)*min(lo, ymax)/ymax))
			yhi := bottom - int(math.Round(float64(plotHeight)*min(hi, ymax)/ymax))
			// Join to the previous column so the line is continuous.
			if prevLo >= 0 {
				yhi = min(yhi, prevLo)
				ylo = max(ylo, prevHi)
			}
			x := marginL + px
			fill(img, image.Rect(x, min(yhi, ylo), x+1, max(yhi, ylo)+1), c)
			prevLo, prevHi = bottom-int(math.Round(float64(plotHeight)*min(lo, ymax)/ymax)), bottom-int(math.Round(float64(plotHeight)*min(hi, ymax)/ymax))
		}
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// text draws s in a 3x5 pixel font scaled by scale, and returns the x
// after it.
func text(img *image.RGBA, x, y int, s string, c color.RGBA, scale int) int {
	for _, r := range s {
		g, ok := font[r]
		if !ok {
			g = font['?']
		}
		for row := range 5 {
			for col := range 3 {
				if g[row][col] == '#' {
					fill(img, image.Rect(x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale), c)
				}
			}
		}
		x += 4 * scale
	}
	return x
}

// font is a 3x5 pixel font of what the labels need.
var font = map[rune][5]string{
	' ': {"...", "...", "...", "...", "..."},
	'0': {"###", "#.#", "#.#", "#.#", "###"},
	'1': {".#.", "##.", ".#.", ".#.", "###"},
	'2': {"###", "..#", "###", "#..", "###"},
	'3': {"###", "..#", ".##", "..#", "###"},
	'4': {"#.#", "#.#", "###", "..#", "..#"},
	'5': {"###", "#..", "###", "..#", "###"},
	'6': {"###", "#..", "###", "#.#", "###"},
	'7': {"###", "..#", ".#.", ".#.", ".#."},
	'8': {"###", "#.#", "###", "#.#", "###"},
	'9': {"###", "#.#", "###", "..#", "###"},
	'A': {".#.", "#.#", "###", "#.#", "#.#"},
	'B': {"##.", "#.#", "##.", "#.#", "##."},
	'C': {".##", "#..", "#..", "#..", ".##"},
	'D': {"##.", "#.#", "#.#", "#.#", "##."},
	'E': {"###", "#..", "##.", "#..", "###"},
	'F': {"###", "#..", "##.", "#..", "#.."},
	'G': {".##", "#..", "#.#", "#.#", ".##"},
	'H': {"#.#", "#.#", "###", "#.#", "#.#"},
	'I': {"###", ".#.", ".#.", ".#.", "###"},
	'J': {"..#", "..#", "..#", "#.#", ".#."},
	'K': {"#.#", "#.#", "##.", "#.#", "#.#"},
	'L': {"#..", "#..", "#..", "#..", "###"},
	'M': {"#.#", "###", "###", "#.#", "#.#"},
	'N': {"##.", "#.#", "#.#", "#.#", "#.#"},
	'O': {".#.", "#.#", "#.#", "#.#", ".#."},
	'P': {"##.", "#.#", "##.", "#..", "#.."},
	'Q': {".#.", "#.#", "#.#", "##.", ".##"},
	'R': {"##.", "#.#", "##.", "#.#", "#.#"},
	'S': {".##", "#..", ".#.", "..#", "##."},
	'T': {"###", ".#.", ".#.", ".#.", ".#."},
	'U': {"#.#", "#.#", "#.#", "#.#", "###"},
	'V': {"#.#", "#.#", "#.#", "#.#", ".#."},
	'W': {"#.#", "#.#", "###", "###", "#.#"},
	'X': {"#.#", "#.#", ".#.", "#.#", "#.#"},
	'Y': {"#.#", "#.#", ".#.", ".#.", ".#."},
	'Z': {"###", "..#", ".#.", "#..", "###"},
	'+': {"...", ".#.", "###", ".#.", "..."},
	'-': {"...", "...", "###", "...", "..."},
	'/': {"..#", "..#", ".#.", "#..", "#.."},
	',': {"...", "...", "...", ".#.", "#.."},
	'.': {"...", "...", "...", "...", ".#."},
	'(': {".#.", "#..", "#..", "#..", ".#."},
	')': {".#.", "..#", "..#", "..#", ".#."},
	'_': {"...", "...", "...", "...", "###"},
	'?': {"###", "..#", ".#.", "...", ".#."},
}
