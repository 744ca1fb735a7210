package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"image/png"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doozerfs/doozerfs/mount"
)

// tinyBench are workload sizes small enough for a test under the race
// detector: this checks that every workload runs and reports sane figures,
// not how fast anything is.
var tinyBench = []string{
	"--writes", "20", "--seq-keys", "10",
	"--conc-writes", "40", "--conc-keys", "30",
	"--reads", "80", "--read-keys", "16",
	"--events", "10",
	"--clients", "4",
	"--timeout", "2m",
}

func runBenchCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	code := runMain(ctx, e, append([]string{"bench"}, args...))
	return stdout.String(), stderr.String(), code
}

func checkSane(t *testing.T, r resultJSON) {
	t.Helper()
	if r.Ops <= 0 || r.Errors != 0 {
		t.Errorf("%s: %d ops, %d errors (%s)", r.Workload, r.Ops, r.Errors, r.FirstError)
	}
	if !(r.P50us > 0 && r.P50us <= r.P90us && r.P90us <= r.P99us && r.P99us <= r.MaxUs) {
		t.Errorf("%s: percentiles out of order: p50 %v p90 %v p99 %v max %v", r.Workload, r.P50us, r.P90us, r.P99us, r.MaxUs)
	}
	if r.OpsPerS <= 0 || r.ElapsedS <= 0 || r.MeanUs <= 0 || r.MeanUs > r.MaxUs || r.CPUPerOpUs < 0 || r.AllocsOp <= 0 {
		t.Errorf("%s: ops/s %v over %v s, mean %v µs, cpu/op %v µs", r.Workload, r.OpsPerS, r.ElapsedS, r.MeanUs, r.CPUPerOpUs)
	}
	if r.Target == "" || r.Etcd == "" || (r.Verdict != "met" && r.Verdict != "missed") {
		t.Errorf("%s: target %q, etcd %q, verdict %q", r.Workload, r.Target, r.Etcd, r.Verdict)
	}
}

// TestBenchInProcess runs the workloads of the wire protocol, twice, against an
// in-process replica and checks the JSON report.
func TestBenchInProcess(t *testing.T) {
	dir := t.TempDir()
	// The default set on this machine may hold the mount workloads too
	// (TestBenchMount runs those); these are the four every replica has.
	out, stderr, code := runBenchCmd(t, append([]string{"--json", "--runs", "2", "--data", dir,
		"--workload", "seq-write,conc-write,local-read,watch-latency"}, tinyBench...)...)
	if code != exitOK {
		t.Fatalf("exit %d: %s\n%s", code, stderr, out)
	}
	var doc benchDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("decoding the report: %v\n%s", err, out)
	}
	if doc.Mode != "in-process" || len(doc.Addrs) != 1 || !strings.HasPrefix(doc.DataDir, dir) || doc.Runs != 2 {
		t.Errorf("report header: %+v", doc)
	}
	want := []string{"seq-write", "conc-write", "local-read", "watch-latency"}
	if len(doc.Results) != 2*len(want) || len(doc.Medians) != len(want) || len(doc.Failures) != 0 {
		t.Fatalf("%d results, %d medians, failures %v; want %d, %d, none", len(doc.Results), len(doc.Medians), doc.Failures, 2*len(want), len(want))
	}
	for i, r := range doc.Results {
		if r.Workload != want[i%len(want)] || r.Run != 1+i/len(want) {
			t.Errorf("result %d is %s run %d", i, r.Workload, r.Run)
		}
		checkSane(t, r)
	}
	for i, m := range doc.Medians {
		if m.Workload != want[i] || m.Run != 0 {
			t.Errorf("median %d is %s run %d", i, m.Workload, m.Run)
		}
		checkSane(t, m)
	}
	byName := map[string]resultJSON{}
	for _, r := range doc.Results {
		byName[r.Workload] = r
	}
	if byName["seq-write"].Clients != 1 || byName["conc-write"].Clients != 4 || byName["local-read"].Clients != 4 {
		t.Errorf("client counts: %+v", byName)
	}
	if byName["seq-write"].Ops != 20 || byName["conc-write"].Ops != 40 || byName["local-read"].Ops != 80 || byName["watch-latency"].Ops != 10 {
		t.Errorf("op counts: %+v", byName)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 0 {
		t.Errorf("the temporary data directory was not removed: %v %v", ents, err)
	}
}

// TestBenchCluster runs the text report against a replica the test started,
// named twice in --addr so that clients are spread over two addresses, with
// the clients sharing two connections.
func TestBenchCluster(t *testing.T) {
	r, dir, err := startBenchReplica(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	defer r.Close()
	addr := r.Addr()
	out, stderr, code := runBenchCmd(t, append([]string{"--addr", addr + "," + addr, "--conns", "2",
		"--workload", "conc-write,local-read,watch-latency", "--prefix", "/other/"}, tinyBench...)...)
	if code != exitOK {
		t.Fatalf("exit %d: %s\n%s", code, stderr, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], "cluster at "+addr) || !strings.Contains(lines[1], "three replicas") {
		t.Fatalf("report:\n%s", out)
	}
	for i, name := range []string{"conc-write", "local-read", "watch-latency"} {
		l := lines[2+i]
		if !strings.HasPrefix(l, name+" ") || !strings.Contains(l, " p99 ") || !strings.Contains(l, " cpu/op ") || !strings.Contains(l, "target ") || strings.Contains(l, "errors") {
			t.Errorf("line for %s: %s", name, l)
		}
		// The 4 clients of tinyBench share the two connections.
		if shared := strings.Contains(l, "  4 clients/2 conns "); shared != (name != "watch-latency") {
			t.Errorf("line for %s: says clients/conns %v: %s", name, shared, l)
		}
	}
	c, err := (&benchEnv{addrs: []string{addr}}).dial(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ents, err := c.GetDir(context.Background(), "/other", 0); err != nil || len(ents) != 3 {
		t.Errorf("--prefix: /other holds %v (%v), want conc, read and watch", ents, err)
	}
}

func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--workload", "no-such"},
		{"--workload", "seq-write", "extra"},
		{"--clients", "0"},
		{"--prefix", "/"},
		{"--prefix", "relative"},
		{"--addr", ","},
	} {
		_, stderr, code := runBenchCmd(t, args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", args, code, exitUsage, stderr)
		}
	}
}

func TestBenchHelp(t *testing.T) {
	out, _, code := runBenchCmd(t, "--help")
	if code != exitOK || !strings.Contains(out, "-conc-writes") || !strings.Contains(out, "watch-latency") {
		t.Errorf("exit %d, help:\n%s", code, out)
	}
}

func TestBenchTable(t *testing.T) {
	seen := map[string]bool{}
	for _, w := range workloads {
		if w.name == "" || seen[w.name] || w.run == nil || w.def == "" || w.target.goal == "" {
			t.Errorf("workload %+v", w)
		}
		seen[w.name] = true
	}
	one := &benchEnv{addrs: []string{"a"}}
	three := &benchEnv{addrs: []string{"a", "b", "c"}}
	ws, err := selectWorkloads("", one)
	if err != nil || len(ws) != 4 {
		t.Errorf("default workloads on one replica: %d (%v), want 4", len(ws), err)
	}
	if ws, err := selectWorkloads("watch-latency,seq-write,seq-write", three); err != nil || len(ws) != 2 || ws[0].name != "watch-latency" {
		t.Errorf("selection: %v %v", ws, err)
	}
	workloads = append(workloads, &workload{name: "needs-three", needs: needCluster})
	defer func() { workloads = workloads[:len(workloads)-1] }()
	if _, err := selectWorkloads("needs-three", one); err == nil || !strings.Contains(err.Error(), "three replicas") {
		t.Errorf("a cluster workload on one replica: %v", err)
	}
	if ws, _ := selectWorkloads("", one); len(ws) != 4 {
		t.Errorf("default on one replica includes a cluster workload: %d", len(ws))
	}
	if ws, _ := selectWorkloads("", three); len(ws) != 5 {
		t.Errorf("default on three replicas leaves out the cluster workload: %d", len(ws))
	}
}

func TestPercentileAndVerdict(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	var r benchResult
	r.summarize(lat, time.Second)
	if r.Ops != 100 || r.Rate != 100 || r.P50 != 50*time.Millisecond || r.P90 != 90*time.Millisecond ||
		r.P99 != 99*time.Millisecond || r.Max != 100*time.Millisecond || r.Mean != 50500*time.Microsecond {
		t.Errorf("summary %+v", r)
	}
	if p := percentile(nil, 0.5); p != 0 {
		t.Errorf("percentile of nothing: %v", p)
	}
	if p := percentile([]time.Duration{7}, 0.99); p != 7 {
		t.Errorf("percentile of one: %v", p)
	}
	tg := target{minRate: 50, maxP99: 100 * time.Millisecond}
	if v := tg.verdict(&r); v != "met" {
		t.Errorf("verdict %q, want met", v)
	}
	tg.maxP50 = 10 * time.Millisecond
	if v := tg.verdict(&r); v != "missed" {
		t.Errorf("verdict %q, want missed", v)
	}
	if v := (target{}).verdict(&r); v != "" {
		t.Errorf("verdict of no bound %q", v)
	}
	for d, want := range map[time.Duration]string{
		1500 * time.Nanosecond: "1.50µs", 166 * time.Microsecond: "166µs",
		3500 * time.Microsecond: "3.50ms", 26800 * time.Microsecond: "26.8ms", 153 * time.Millisecond: "153ms",
	} {
		if got := fmtLatency(d); got != want {
			t.Errorf("fmtLatency(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestBenchLocalClusterFailover: --local 3 starts a real three-replica
// cluster in the process, and the failover workload stops its leader,
// measures until a write commits elsewhere, and restarts it.
func TestBenchLocalClusterFailover(t *testing.T) {
	out, stderr, code := runBenchCmd(t, append([]string{"--json", "--local", "3", "--data", t.TempDir(),
		"--workload", "failover,seq-write", "--failovers", "2"}, tinyBench...)...)
	if code != exitOK {
		t.Fatalf("exit %d: %s\n%s", code, stderr, out)
	}
	var doc benchDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("decoding the report: %v\n%s", err, out)
	}
	if len(doc.Addrs) != 3 || len(doc.Results) != 2 || len(doc.Failures) != 0 {
		t.Fatalf("report: %+v", doc)
	}
	if r := doc.Results[0]; r.Workload != "failover" || r.Ops != 2 {
		t.Errorf("failover result: %+v", r)
	}
	for _, r := range doc.Results {
		checkSane(t, r)
	}
	if _, _, code := runBenchCmd(t, "--workload", "failover"); code != exitUsage {
		t.Errorf("failover without --local: exit %d, want usage", code)
	}
}

// requireBenchFuse skips the test when this machine cannot mount FUSE file
// systems, unless CI is "true": there a missing capability fails.
func requireBenchFuse(t *testing.T) {
	t.Helper()
	missing := fuseMissing()
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("FUSE unavailable: missing %s", missing)
	}
	t.Skipf("FUSE unavailable: missing %s", missing)
}

// benchMountsLeft returns the mounts the bench made (their mountpoints are
// named doozerfs-bench-mount-*) still in this process's namespace.
func benchMountsLeft(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 5 && strings.Contains(f[4], "doozerfs-bench-mount-") {
			left = append(left, f[4])
		}
	}
	return left
}

// decodeBench decodes a --json report.
func decodeBench(t *testing.T, out string) benchDoc {
	t.Helper()
	var doc benchDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("decoding the report: %v\n%s", err, out)
	}
	return doc
}

// checkMountResults checks mount-read's and inotify-latency's figures.
func checkMountResults(t *testing.T, doc benchDoc, reads, events int) {
	t.Helper()
	if len(doc.Results) != 2 || len(doc.Failures) != 0 {
		t.Fatalf("results %+v, failures %+v", doc.Results, doc.Failures)
	}
	for _, r := range doc.Results {
		checkSane(t, r)
	}
	mr, in := doc.Results[0], doc.Results[1]
	if mr.Workload != "mount-read" || mr.Ops != reads || mr.Clients != 1 {
		t.Errorf("mount-read: %+v", mr)
	}
	if !(mr.TmpfsP50us > 0 && mr.TmpfsP50us <= mr.TmpfsP99us && mr.TmpfsMeanUs > 0) || !strings.Contains(mr.Detail, "tmpfs") {
		t.Errorf("mount-read's tmpfs figures: %+v", mr)
	}
	if in.Workload != "inotify-latency" || in.Ops != events {
		t.Errorf("inotify-latency: %+v", in)
	}
	if !(in.ModifyP50us > 0 && in.ModifyP50us <= in.ModifyP99us) || !strings.Contains(in.Detail, "IN_MODIFY") {
		t.Errorf("inotify-latency's IN_MODIFY figures: %+v", in)
	}
}

// TestBenchMount runs mount-read and inotify-latency through a real FUSE
// mount of the in-process replica, and of the third replica of --local 3
// (SET on replica 1, the inotify watcher on replica 3's mount), and checks
// that every mount is gone afterwards and its mountpoint removed.
func TestBenchMount(t *testing.T) {
	requireBenchFuse(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where the bench makes its mountpoints
	t.Cleanup(func() {
		for _, d := range benchMountsLeft(t) {
			exec.Command("fusermount3", "-uz", d).Run()
		}
	})
	for _, mode := range [][]string{nil, {"--local", "3"}} {
		t.Run(fmt.Sprint("mode", mode), func(t *testing.T) {
			args := append([]string{"--json", "--data", t.TempDir(), "--workload", "mount-read,inotify-latency",
				"--mount-reads", "300", "--inotify-events", "20", "--size", "64"}, mode...)
			out, stderr, code := runBenchCmd(t, append(args, tinyBench...)...)
			if code != exitOK {
				t.Fatalf("exit %d: %s\n%s", code, stderr, out)
			}
			doc := decodeBench(t, out)
			checkMountResults(t, doc, 300, 20)
			if left := benchMountsLeft(t); len(left) != 0 {
				t.Errorf("mounts left behind: %v", left)
			}
			if ents, _ := filepath.Glob(filepath.Join(tmp, "doozerfs-bench-mount-*")); len(ents) != 0 {
				t.Errorf("mountpoints left behind: %v", ents)
			}
		})
	}
	// Without a mount to use, the mount workloads are refused by name.
	if _, stderr, code := runBenchCmd(t, "--addr", "127.0.0.1:1", "--workload", "mount-read"); code != exitUsage || !strings.Contains(stderr, "mount") {
		t.Errorf("mount-read with --addr and no --mount-dir: exit %d: %s", code, stderr)
	}
}

// TestBenchMountDir runs the mount workloads against a running replica
// through a mount the test made (--addr with --mount-dir).
func TestBenchMountDir(t *testing.T) {
	requireBenchFuse(t)
	r, dir, err := startBenchReplica(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	defer r.Close()
	mp := t.TempDir()
	opts := mount.DefaultOptions()
	opts.Logger = slog.New(slog.DiscardHandler)
	m, err := mount.Mount(mp, r, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		m.Close()
		exec.Command("fusermount3", "-uz", mp).Run()
	}()
	out, stderr, code := runBenchCmd(t, append([]string{"--json", "--addr", r.Addr(), "--mount-dir", m.Dir(),
		"--workload", "mount-read,inotify-latency", "--mount-reads", "200", "--inotify-events", "10"}, tinyBench...)...)
	if code != exitOK {
		t.Fatalf("exit %d: %s\n%s", code, stderr, out)
	}
	checkMountResults(t, decodeBench(t, out), 200, 10)
	if _, stderr, code := runBenchCmd(t, "--mount-dir", mp); code != exitUsage {
		t.Errorf("--mount-dir without --addr: exit %d (%s)", code, stderr)
	}
}

// childrenUsing returns the processes whose command line mentions dir.
func childrenUsing(t *testing.T, dir string) []string {
	t.Helper()
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var found []string
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), dir) {
			found = append(found, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// TestBenchScale runs the scale measurements small, on real `doozerfs
// serve` child processes: files written, the replica killed and
// restarted, a member joining and caught up by snapshot (a low
// --snapshot-every makes the small log compact), watches opened. No child
// and no data directory may be left afterwards.
func TestBenchScale(t *testing.T) {
	bin := binary(t)
	data := t.TempDir()
	t.Cleanup(func() {
		for _, p := range childrenUsing(t, data) {
			t.Errorf("a child process was left running: %s", p)
		}
	})
	out, stderr, code := runBenchCmd(t, "--json", "--data", data, "--serve-bin", bin,
		"--workload", "scale-files,restart,catch-up,watches", "--files", "2000", "--files-batch", "40",
		"--snapshot-every", "10", "--watches", "1500", "--timeout", "2m")
	if code != exitOK {
		t.Fatalf("exit %d: %s\n%s", code, stderr, out)
	}
	doc := decodeBench(t, out)
	if len(doc.Results) != 4 || len(doc.Failures) != 0 {
		t.Fatalf("results %+v, failures %+v", doc.Results, doc.Failures)
	}
	by := map[string]resultJSON{}
	for _, r := range doc.Results {
		checkSane(t, r)
		if r.Detail == "" {
			t.Errorf("%s: no detail", r.Workload)
		}
		by[r.Workload] = r
	}
	sf, rs, cu, wa := by["scale-files"], by["restart"], by["catch-up"], by["watches"]
	if sf.Ops != 2000 || sf.RSSBytes == 0 || sf.HWMBytes < sf.RSSBytes || sf.RSSBeforeByte == 0 || sf.Verdict != "met" {
		t.Errorf("scale-files: %+v", sf)
	}
	if rs.Ops != 1 || !strings.Contains(rs.Detail, "answered a GET") {
		t.Errorf("restart: %+v", rs)
	}
	if cu.Ops != 1 || !strings.Contains(cu.Detail, "by snapshot") {
		t.Errorf("catch-up: %+v", cu)
	}
	if wa.Ops != 1500 || wa.RSSBytes == 0 || !strings.Contains(wa.Detail, "on 2 connections") {
		t.Errorf("watches: %+v", wa)
	}
	if ents, err := os.ReadDir(data); err != nil || len(ents) != 0 {
		t.Errorf("data directories left behind: %v %v", ents, err)
	}
	// The scale workloads are left out of the default set unless --scale.
	one := &benchEnv{addrs: []string{"a"}}
	if ws, _ := selectWorkloads("", one); slices.ContainsFunc(ws, func(w *workload) bool { return w.scale }) {
		t.Errorf("default set holds a scale workload")
	}
	one.withScale = true
	if ws, _ := selectWorkloads("", one); len(ws) != 8 {
		t.Errorf("default set with --scale: %d workloads, want 8", len(ws))
	}
}

// TestBenchSweepPlot sweeps the client count of conc-write and local-read
// and draws the plot; the PNG must decode and show both series.
func TestBenchSweepPlot(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sweep.png")
	out, stderr, code := runBenchCmd(t, append([]string{"--json", "--data", dir, "--sweep", "3,1", "--plot", file}, tinyBench...)...)
	if code != exitOK {
		t.Fatalf("exit %d: %s\n%s", code, stderr, out)
	}
	doc := decodeBench(t, out)
	if len(doc.Sweep) != 4 || len(doc.Results) != 4 {
		t.Fatalf("sweep %+v, results %d", doc.Sweep, len(doc.Results))
	}
	for i, want := range []struct {
		name    string
		clients int
	}{{"conc-write", 1}, {"local-read", 1}, {"conc-write", 3}, {"local-read", 3}} {
		if s := doc.Sweep[i]; s.Workload != want.name || s.Clients != want.clients {
			t.Errorf("sweep point %d: %s at %d clients, want %s at %d", i, s.Workload, s.Clients, want.name, want.clients)
		}
		checkSane(t, doc.Sweep[i])
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decoding the plot: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 300 {
		t.Errorf("plot of %v", b)
	}
	seen := map[color.RGBA]bool{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, b, a := img.At(x, y).RGBA()
			seen[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}] = true
		}
	}
	for _, c := range append(plotColors[:2:2], plotBlack, plotWhite) {
		if !seen[c] {
			t.Errorf("the plot has no pixel of %v", c)
		}
	}

	// Text: one line per workload and count, labelled with the count.
	out, stderr, code = runBenchCmd(t, append([]string{"--data", dir, "--sweep", "2", "--workload", "conc-write"}, tinyBench...)...)
	if code != exitOK || !strings.Contains(out, "conc-write @2 ") || strings.Contains(out, "local-read") {
		t.Errorf("exit %d: %s\n%s", code, stderr, out)
	}
	for _, args := range [][]string{
		{"--plot", file},
		{"--sweep", "0"},
		{"--sweep", "x"},
		{"--sweep", "4", "--workload", "seq-write"},
	} {
		if _, stderr, code := runBenchCmd(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want usage (%s)", args, code, stderr)
		}
	}
}

func TestBenchHelpers(t *testing.T) {
	rss, hwm, err := parseProcMemory(strings.NewReader("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"))
	if err != nil || rss != 1<<20 || hwm != 2<<20 {
		t.Errorf("parseProcMemory: %d %d %v", rss, hwm, err)
	}
	if _, _, err := parseProcMemory(strings.NewReader("Name:\tx\n")); err == nil {
		t.Error("parseProcMemory of no figures: no error")
	}
	if rss, _, err := procMemory(os.Getpid()); err != nil || rss == 0 {
		t.Errorf("procMemory of this process: %d %v", rss, err)
	}
	for v, want := range map[float64]float64{0.3: 0.5, 7: 10, 1500: 2000, 21000: 50000, 100: 100} {
		if got := niceStep(v); got != want {
			t.Errorf("niceStep(%v) = %v, want %v", v, got, want)
		}
	}
	for v, want := range map[float64]string{0: "0", 500: "500", 2500: "2.5k", 20000: "20k", 1.5e6: "1.5m"} {
		if got := fmtRate(v); got != want {
			t.Errorf("fmtRate(%v) = %q, want %q", v, got, want)
		}
	}
	if c, err := parseCounts("64,1,4,4"); err != nil || !slices.Equal(c, []int{1, 4, 64}) {
		t.Errorf("parseCounts: %v %v", c, err)
	}
	for r := range glyphs {
		if g := glyphs[r]; len(g) != glyphH || slices.ContainsFunc(g[:], func(row string) bool { return len(row) != glyphW }) {
			t.Errorf("glyph %q: %q", r, g)
		}
	}
}

func TestProcCPUTime(t *testing.T) {
	if d, err := procCPUTime(os.Getpid()); err != nil || d < 0 {
		t.Errorf("procCPUTime of this process: %v %v", d, err)
	}
	if _, err := procCPUTime(-1); err == nil {
		t.Error("procCPUTime of no process: no error")
	}
}
