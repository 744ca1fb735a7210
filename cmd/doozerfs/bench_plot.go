package main

// `doozerfs bench --sweep ... --plot FILE.png`: throughput against client
// count, drawn with the standard library (image, image/png) and a small
// built-in bitmap font.

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// parseCounts parses --sweep's comma-separated client counts.
func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a client count (a whole number ≥ 1)", f)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no client count")
	}
	slices.Sort(out)
	return out, nil
}

// plotSeries is one workload's throughput at each client count.
type plotSeries struct {
	name   string
	points [][2]float64 // client count, ops/s
}

// sweepSeries groups --sweep's figures by workload, in order of appearance.
func sweepSeries(sweep []resultJSON) []plotSeries {
	var ss []plotSeries
	for _, r := range sweep {
		i := slices.IndexFunc(ss, func(s plotSeries) bool { return s.name == r.Workload })
		if i < 0 {
			ss = append(ss, plotSeries{name: r.Workload})
			i = len(ss) - 1
		}
		ss[i].points = append(ss[i].points, [2]float64{float64(r.Clients), r.OpsPerS})
	}
	for _, s := range ss {
		slices.SortFunc(s.points, func(a, b [2]float64) int { return int(a[0] - b[0]) })
	}
	return ss
}

// writeSweepPlot draws the sweep's throughput against client count to a
// PNG file.
func writeSweepPlot(file string, sweep []resultJSON, b *benchEnv) error {
	ss := sweepSeries(sweep)
	if len(ss) == 0 {
		return errors.New("nothing to draw: no workload of the sweep succeeded")
	}
	what := fmt.Sprintf("%d replica(s)", len(b.addrs))
	switch {
	case b.inproc:
		what = "one replica in the bench process"
	case b.cluster != nil:
		what = fmt.Sprintf("%d replicas in the bench process", len(b.addrs))
	}
	if b.loadAvg != "" {
		what += ", load " + b.loadAvg + " before"
	}
	img := drawPlot(ss, "doozerfs bench --sweep: throughput against client count", what)
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var (
	plotWhite = color.RGBA{255, 255, 255, 255}
	plotBlack = color.RGBA{0, 0, 0, 255}
	plotGrid  = color.RGBA{225, 225, 225, 255}
	plotGrey  = color.RGBA{90, 90, 90, 255}
	// plotColors are the series' colours, in turn.
	plotColors = []color.RGBA{{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255}}
)

// drawPlot draws the series on a log-2 client-count axis and a linear
// throughput axis from 0.
func drawPlot(ss []plotSeries, title, subtitle string) *image.RGBA {
	const (
		w, h                     = 900, 560
		left, right, top, bottom = 100, 190, 100, 70
		scale                    = 2 // font scale
	)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fillRect(img, 0, 0, w, h, plotWhite)
	x0, x1, y0, y1 := left, w-right, h-bottom, top // plot area: x0..x1, y0 (bottom)..y1 (top)

	var xs []float64
	ymax := 0.0
	for _, s := range ss {
		for _, p := range s.points {
			if !slices.Contains(xs, p[0]) {
				xs = append(xs, p[0])
			}
			ymax = max(ymax, p[1])
		}
	}
	slices.Sort(xs)
	lx0, lx1 := math.Log2(xs[0]), math.Log2(xs[len(xs)-1])
	if lx1-lx0 < 1 {
		lx0, lx1 = lx0-0.5, lx1+0.5
	}
	pad := (lx1 - lx0) * 0.04
	lx0, lx1 = lx0-pad, lx1+pad
	step := niceStep(ymax / 5)
	top5 := math.Ceil(ymax/step) * step
	if top5 <= 0 {
		top5, step = 1, 0.2
	}
	px := func(x float64) int { return x0 + int(math.Round((math.Log2(x)-lx0)/(lx1-lx0)*float64(x1-x0))) }
	py := func(y float64) int { return y0 - int(math.Round(y/top5*float64(y0-y1))) }

	// Grid, ticks and their labels.
	for v := 0.0; v <= top5+step/2; v += step {
		y := py(v)
		hline(img, x0, x1, y, plotGrid)
		hline(img, x0-6, x0, y, plotBlack)
		l := fmtRate(v)
		drawText(img, x0-10-textWidth(l, scale), y-textHeight(scale)/2+2, l, scale, plotBlack)
	}
	for _, x := range xs {
		X := px(x)
		vline(img, X, y1, y0, plotGrid)
		vline(img, X, y0, y0+6, plotBlack)
		l := strconv.Itoa(int(x))
		drawText(img, X-textWidth(l, scale)/2, y0+12, l, scale, plotBlack)
	}
	// Axes.
	hline(img, x0, x1, y0, plotBlack)
	hline(img, x0, x1, y0+1, plotBlack)
	vline(img, x0, y1, y0, plotBlack)
	vline(img, x0-1, y1, y0, plotBlack)
	// Titles.
	drawText(img, (w-textWidth(title, scale))/2, 14, title, scale, plotBlack)
	drawText(img, (w-textWidth(subtitle, scale))/2, 42, subtitle, scale, plotGrey)
	xl := "concurrent clients (log scale)"
	drawText(img, x0+(x1-x0-textWidth(xl, scale))/2, h-30, xl, scale, plotBlack)
	drawText(img, x0-textWidth("ops/s", scale)/2, y1-28, "ops/s", scale, plotBlack)

	// The series, and the legend.
	for i, s := range ss {
		c := plotColors[i%len(plotColors)]
		for j, p := range s.points {
			X, Y := px(p[0]), py(p[1])
			fillRect(img, X-4, Y-4, X+5, Y+5, c)
			if j > 0 {
				q := s.points[j-1]
				thickLine(img, px(q[0]), py(q[1]), X, Y, c)
			}
		}
		ly := y1 + 10 + i*30
		thickLine(img, x1+20, ly+7, x1+50, ly+7, c)
		fillRect(img, x1+31, ly+3, x1+40, ly+12, c)
		drawText(img, x1+58, ly, s.name, scale, plotBlack)
	}
	return img
}

// niceStep returns 1, 2 or 5 times a power of ten, at least v.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// fmtRate prints an axis value: 0, 500, 2.5k, 20k, 1.5M.
func fmtRate(v float64) string {
	trim := func(s string) string {
		return strings.TrimSuffix(strings.TrimRight(strings.TrimRight(s, "0"), "."), ".")
	}
	switch {
	case v >= 1e6:
		return trim(fmt.Sprintf("%.2f", v/1e6)) + "m"
	case v >= 1e3:
		return trim(fmt.Sprintf("%.2f", v/1e3)) + "k"
	default:
		return trim(fmt.Sprintf("%.2f", v))
	}
}

func fillRect(img *image.RGBA, xa, ya, xb, yb int, c color.RGBA) {
	for y := ya; y < yb; y++ {
		for x := xa; x < xb; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func hline(img *image.RGBA, xa, xb, y int, c color.RGBA) { fillRect(img, xa, y, xb+1, y+1, c) }
func vline(img *image.RGBA, x, ya, yb int, c color.RGBA) { fillRect(img, x, ya, x+1, yb+1, c) }

// thickLine draws a line three pixels wide (Bresenham, with a 3×3 pen).
func thickLine(img *image.RGBA, xa, ya, xb, yb int, c color.RGBA) {
	dx, dy := abs(xb-xa), -abs(yb-ya)
	sx, sy := 1, 1
	if xa > xb {
		sx = -1
	}
	if ya > yb {
		sy = -1
	}
	e := dx + dy
	for {
		fillRect(img, xa-1, ya-1, xa+2, ya+2, c)
		if xa == xb && ya == yb {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			xa += sx
		} else {
			e += dx
			ya += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// The font: 5×8 cells (7 rows above the baseline, one below), one string
// per row, '#' for ink. Capitals are drawn as small letters.
const (
	glyphW, glyphH = 5, 8
	glyphAdvance   = glyphW + 1
)

func textWidth(s string, scale int) int { return len([]rune(s)) * glyphAdvance * scale }
func textHeight(scale int) int          { return glyphH * scale }

// drawText draws s with its top left corner at x, y, each font pixel a
// scale×scale square. Characters without a glyph are drawn as a box.
func drawText(img *image.RGBA, x, y int, s string, scale int, c color.RGBA) {
	for _, r := range strings.ToLower(s) {
		g, ok := glyphs[r]
		if !ok {
			g = glyphs['?']
		}
		for row, bits := range g {
			for col, b := range bits {
				if b == '#' {
					fillRect(img, x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale, c)
				}
			}
		}
		x += glyphAdvance * scale
	}
}

var glyphs = map[rune][glyphH]string{
	' ': {".....", ".....", ".....", ".....", ".....", ".....", ".....", "....."},
	'?': {"#####", "#...#", "#...#", "#...#", "#...#", "#...#", "#####", "....."},
	'0': {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###.", "....."},
	'1': {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###.", "....."},
	'2': {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####", "....."},
	'3': {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###.", "....."},
	'4': {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#.", "....."},
	'5': {"#####", "#....", "####.", "....#", "....#", "#...#", ".###.", "....."},
	'6': {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###.", "....."},
	'7': {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#...", "....."},
	'8': {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###.", "....."},
	'9': {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##..", "....."},
	'a': {".....", ".....", ".###.", "....#", ".####", "#...#", ".####", "....."},
	'b': {"#....", "#....", "####.", "#...#", "#...#", "#...#", "####.", "....."},
	'c': {".....", ".....", ".###.", "#....", "#....", "#...#", ".###.", "....."},
	'd': {"....#", "....#", ".####", "#...#", "#...#", "#...#", ".####", "....."},
	'e': {".....", ".....", ".###.", "#...#", "#####", "#....", ".###.", "....."},
	'f': {"..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#...", "....."},
	'g': {".....", ".....", ".####", "#...#", "#...#", ".####", "....#", ".###."},
	'h': {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#", "....."},
	'i': {"..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###.", "....."},
	'j': {"...#.", ".....", "..##.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
	'k': {"#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "....."},
	'l': {".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", "....."},
	'm': {".....", ".....", "##.#.", "#.#.#", "#.#.#", "#.#.#", "#.#.#", "....."},
	'n': {".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#", "....."},
	'o': {".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###.", "....."},
	'p': {".....", ".....", "####.", "#...#", "#...#", "####.", "#....", "#...."},
	'q': {".....", ".....", ".####", "#...#", "#...#", ".####", "....#", "....#"},
	'r': {".....", ".....", "#.##.", "##..#", "#....", "#....", "#....", "....."},
	's': {".....", ".....", ".####", "#....", ".###.", "....#", "####.", "....."},
	't': {".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##.", "....."},
	'u': {".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#", "....."},
	'v': {".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#..", "....."},
	'w': {".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#.", "....."},
	'x': {".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "....."},
	'y': {".....", ".....", "#...#", "#...#", "#...#", ".####", "....#", ".###."},
	'z': {".....", ".....", "#####", "...#.", "..#..", ".#...", "#####", "....."},
	'-': {".....", ".....", ".....", "#####", ".....", ".....", ".....", "....."},
	':': {".....", "..#..", ".....", ".....", ".....", "..#..", ".....", "....."},
	'/': {"....#", "...#.", "...#.", "..#..", ".#...", ".#...", "#....", "....."},
	'(': {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#.", "....."},
	')': {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#...", "....."},
	',': {".....", ".....", ".....", ".....", ".....", "..#..", "..#..", ".#..."},
	'.': {".....", ".....", ".....", ".....", ".....", ".....", "..#..", "....."},
	'=': {".....", ".....", "#####", ".....", "#####", ".....", ".....", "....."},
	'+': {".....", "..#..", "..#..", "#####", "..#..", "..#..", ".....", "....."},
	'@': {".###.", "#...#", "#.###", "#.#.#", "#.###", "#....", ".###.", "....."},
}
