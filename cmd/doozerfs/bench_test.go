package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
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

// TestBenchInProcess runs every default workload, twice, against an
// in-process replica and checks the JSON report.
func TestBenchInProcess(t *testing.T) {
	dir := t.TempDir()
	out, stderr, code := runBenchCmd(t, append([]string{"--json", "--runs", "2", "--data", dir}, tinyBench...)...)
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
