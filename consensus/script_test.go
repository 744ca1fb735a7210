package consensus

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden output of testdata/*.txt")

// Scripted scenarios: each testdata/*.txt file is a list of blocks
//
//	# comments
//	command args
//	----
//	output
//
// separated by blank lines. The test runs each command against an in-memory
// cluster and compares the output; -update rewrites it. Commands:
//
//	cluster voters=1,2,3 [learners=4]   start replicas of a restored cluster
//	found ID | join ID                  start a founder / an empty joining replica
//	campaign ID                         ID's election timer fires
//	propose ID VALUE...                 Propose at ID
//	stabilize                           process Readys and deliver messages until quiet
//	process ID... | deliver             one Ready of each ID / deliver what is in flight
//	drop FROM->TO | drop all            drop messages in flight
//	partition A.. / B.. | cut FROM->TO | heal
//	tick ID|all [N] | tick-election ID|all | tick-heartbeat ID|all
//	crash ID [keep-unsynced] | restart ID
//	add ID | promote ID | remove ID     membership change at the leader (add also starts ID)
//	transfer ID                         leadership transfer to ID
//	compact ID                          snapshot ID's state machine and compact
//	read ID CTX                         ReadIndex at ID
//	status ID...                        Status
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScript(t, f) })
	}
}

type scriptBlock struct {
	pre     []string // comment lines before the command
	command string
	output  []string
}

func parseScript(t *testing.T, path string) []scriptBlock {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []scriptBlock
	var b scriptBlock
	state := 0 // 0: before command, 1: after command, 2: in output
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case state == 2 && line == "":
			blocks, b, state = append(blocks, b), scriptBlock{}, 0
		case state == 2:
			b.output = append(b.output, line)
		case state == 1 && line == "----":
			state = 2
		case state == 1:
			t.Fatalf("%s:%d: want ---- after the command", path, i+1)
		case line == "" || strings.HasPrefix(line, "#"):
			if line != "" || len(b.pre) > 0 {
				b.pre = append(b.pre, line)
			}
		default:
			b.command, state = line, 1
		}
	}
	if state != 0 {
		blocks = append(blocks, b)
	}
	return blocks
}

func runScript(t *testing.T, path string) {
	blocks := parseScript(t, path)
	s := &script{t: t}
	var out strings.Builder
	failed := false
	for _, b := range blocks {
		got := s.run(b.command)
		if len(got) == 0 {
			got = []string{"ok"}
		}
		if !*update && strings.Join(got, "\n") != strings.Join(b.output, "\n") {
			t.Errorf("%s: %s\ngot:\n%s\nwant:\n%s", path, b.command, strings.Join(got, "\n"), strings.Join(b.output, "\n"))
			failed = true
		}
		for _, p := range b.pre {
			out.WriteString(p + "\n")
		}
		fmt.Fprintf(&out, "%s\n----\n%s\n\n", b.command, strings.Join(got, "\n"))
	}
	if *update && !failed {
		if err := os.WriteFile(path, []byte(strings.TrimSuffix(out.String(), "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type script struct {
	t   *testing.T
	c   *cluster
	out []string
}

func (s *script) printf(format string, args ...any) {
	s.out = append(s.out, fmt.Sprintf(format, args...))
}

func (s *script) cluster() *cluster {
	if s.c == nil {
		s.c = newCluster(s.t, testConfig)
		s.c.trace = s.printf
	}
	return s.c
}

func (s *script) run(command string) []string {
	s.out = nil
	f := strings.Fields(command)
	c := s.cluster()
	switch f[0] {
	case "cluster":
		voters, learners := idsArg(f[1:], "voters"), idsArg(f[1:], "learners")
		for _, id := range append(append([]uint64{}, voters...), learners...) {
			c.addNode(id, votersState(voters, learners))
		}
	case "found":
		c.addNode(id(f[1]), Founding(id(f[1])))
	case "join":
		c.addNode(id(f[1]), State{})
	case "campaign":
		c.nodes[id(f[1])].node.startPreVote()
	case "propose":
		s.propose(f[1:])
	case "stabilize":
		c.settle(1000)
	case "process":
		for _, a := range f[1:] {
			c.process(id(a))
		}
	case "deliver":
		for n := len(c.net); n > 0; n-- {
			c.deliver(0)
		}
	case "drop", "cut":
		s.drop(f[0], f[1])
	case "partition":
		s.partition(f[1:])
	case "heal":
		c.cut = map[[2]uint64]bool{}
	case "tick", "tick-election", "tick-heartbeat":
		s.tick(f)
	case "crash":
		c.crash(id(f[1]), len(f) > 2 && f[2] == "keep-unsynced")
	case "restart":
		c.restart(id(f[1]))
	case "add", "promote", "remove", "transfer":
		s.change(f[0], id(f[1]))
	case "compact":
		tn := c.nodes[id(f[1])]
		c.compactEvery = 1
		c.maybeCompact(tn)
		c.compactEvery = 0
		s.printf("%d: snapshot slot=%d", tn.id, tn.disk.snap.Slot)
	case "read":
		if err := c.nodes[id(f[1])].node.ReadIndex([]byte(f[2])); err != nil {
			s.printf("error: %v", err)
		}
	case "status":
		for _, a := range f[1:] {
			s.status(id(a))
		}
	default:
		s.t.Fatalf("unknown command %q", command)
	}
	return s.out
}

func id(s string) uint64 {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		panic(fmt.Sprintf("bad id %q", s))
	}
	return v
}

func idsArg(args []string, key string) []uint64 {
	var out []uint64
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, key+"="); ok {
			for _, x := range strings.Split(v, ",") {
				out = append(out, id(x))
			}
		}
	}
	return out
}

func (s *script) propose(args []string) {
	tn := s.c.nodes[id(args[0])]
	for _, v := range args[1:] {
		pid, err := tn.node.Propose([]byte(v))
		if err != nil {
			s.printf("%s: error: %v", v, err)
			continue
		}
		s.c.chk.propose(pid, []byte(v))
	}
}

func (s *script) drop(cmd, arg string) {
	if arg == "all" {
		s.c.net = nil
		return
	}
	a, b, _ := strings.Cut(arg, "->")
	from, to := id(a), id(b)
	if cmd == "cut" {
		s.c.cut[[2]uint64{from, to}] = true
		return
	}
	kept := s.c.net[:0]
	for _, e := range s.c.net {
		if e.msg.From == from && e.msg.To == to {
			s.printf("dropped %s", e.msg)
			continue
		}
		kept = append(kept, e)
	}
	s.c.net = kept
}

func (s *script) partition(args []string) {
	var groups [][]uint64
	cur := []uint64{}
	for _, a := range args {
		if a == "/" {
			groups, cur = append(groups, cur), []uint64{}
			continue
		}
		cur = append(cur, id(a))
	}
	groups = append(groups, cur)
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					s.c.cut[[2]uint64{a, b}] = true
				}
			}
		}
	}
}

func (s *script) tick(f []string) {
	var ids []uint64
	if f[1] == "all" {
		ids = s.c.ids
	} else {
		ids = []uint64{id(f[1])}
	}
	for _, i := range ids {
		tn := s.c.nodes[i]
		if !tn.up {
			continue
		}
		n := 1
		switch {
		case f[0] == "tick-election":
			n = tn.node.cfg.ElectionTicks + tn.node.cfg.ElectionJitterTicks
		case f[0] == "tick-heartbeat":
			n = tn.node.cfg.HeartbeatTicks
		case len(f) > 2:
			n, _ = strconv.Atoi(f[2])
		}
		for k := 0; k < n; k++ {
			tn.node.Tick()
		}
	}
}

func (s *script) change(cmd string, target uint64) {
	l := s.c.leaderID()
	if l == 0 {
		s.printf("error: no leader")
		return
	}
	n := s.c.nodes[l].node
	var err error
	switch cmd {
	case "add":
		err = n.ProposeConfChange(ConfChange{Type: ConfAddLearner, Node: target})
		if err == nil && s.c.nodes[target] == nil {
			s.c.addNode(target, State{}) // the joining replica starts empty
		}
	case "promote":
		err = n.ProposeConfChange(ConfChange{Type: ConfPromote, Node: target})
	case "remove":
		err = n.ProposeConfChange(ConfChange{Type: ConfRemove, Node: target})
	case "transfer":
		err = n.TransferLeadership(target)
	}
	if err != nil {
		s.printf("error: %v", err)
	}
}

func (s *script) status(i uint64) {
	tn := s.c.nodes[i]
	if !tn.up {
		s.printf("%d: down", i)
		return
	}
	st := tn.node.Status()
	line := fmt.Sprintf("%d: %s leader=%d ballot=%s commit=%d applied=%d snapshot=%d %s", st.ID, st.Role, st.Leader, st.Ballot, st.Commit, st.Applied, st.Snapshot, st.Membership)
	for _, p := range st.Peers {
		line += fmt.Sprintf(" [%d match=%d voter=%t active=%t]", p.ID, p.Match, p.Voter, p.Active)
	}
	s.printf("%s", line)
}
