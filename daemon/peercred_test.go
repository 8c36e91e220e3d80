package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swavd/swavd/config"
)

// The writer group is checked against the groups the caller's process
// holds, not against /etc/group: a supplementary group counts, a group the
// user is listed in but the process does not hold does not.
func TestWriterGroupIsTheProcesssOwn(t *testing.T) {
	if err := mayWrite(peerCred{uid: 4242, gid: 4242, groups: []uint32{7, 0}, ok: true}, "root"); err != nil {
		t.Errorf("a supplementary group was refused: %v", err)
	}
	// A user that /etc/group lists as a member of some group, in a process
	// without that group.
	members, _ := os.ReadFile("/etc/group")
	for _, line := range strings.Split(string(members), "\n") {
		f := strings.Split(line, ":")
		if len(f) != 4 || f[3] == "" {
			continue
		}
		u, err := user.Lookup(strings.Split(f[3], ",")[0])
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		if uid == 0 || uid == os.Getuid() {
			continue
		}
		if err := mayWrite(peerCred{uid: uint32(uid), gid: 4242, ok: true}, f[0]); err == nil {
			t.Errorf("user %s, listed in group %s, was let write from a process without the group", u.Username, f[0])
		}
		return
	}
	t.Log("no group in /etc/group lists a member: the listed-but-dropped case is not tried")
}

// Real processes, as root: a client running as another user with the
// writer group only as a supplementary group checkpoints (200); the same
// user without the group gets 403.
func TestWriterGroupWithRealProcesses(t *testing.T) {
	if sock := os.Getenv("PEER_HELPER_SOCKET"); sock != "" {
		peerHelper(sock)
		return
	}
	grp, err := user.LookupGroup("nogroup")
	if err != nil {
		t.Skip("no group nogroup")
	}
	gid, _ := strconv.ParseUint(grp.Gid, 10, 32)
	cfg := testConfig(t)
	cfg.Daemon.SocketGroup = "nogroup"
	client := otherUserClient(t, cfg, "TestWriterGroupWithRealProcesses")
	startDaemon(t, cfg, Options{})
	os.Chmod(cfg.Daemon.Socket, 0o666) // the file mode is not what is tried here
	if out := client([]uint32{uint32(gid)}); !strings.Contains(out, "status 200") {
		t.Errorf("with the group as a supplementary group: %s", out)
	}
	if out := client(nil); !strings.Contains(out, "status 403") {
		t.Errorf("without the group: %s", out)
	}
}

// otherUserClient moves cfg's socket where any user can reach it and
// returns a function that runs peerHelper as uid 4242 with the given
// supplementary groups (re-running test, which must hand over to
// peerHelper when PEER_HELPER_SOCKET is set) and returns what it printed.
// It skips unless root.
func otherUserClient(t *testing.T, cfg *config.Config, test string) func(groups []uint32) string {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	dir, err := os.MkdirTemp("", "swavd-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "daemon.test")
	self, _ := os.ReadFile(os.Args[0])
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.Daemon.Socket = filepath.Join(dir, "swavd.sock")
	return func(groups []uint32) string {
		cmd := exec.Command(bin, "-test.run=^"+test+"$")
		cmd.Env = []string{"PEER_HELPER_SOCKET=" + cfg.Daemon.Socket}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4242, Gid: 4242, Groups: groups}}
		out, err := cmd.CombinedOutput()
		if errors.Is(err, syscall.ENOEXEC) {
			// An arm64 test binary under qemu-user (make test-arm64) cannot
			// start a copy of itself unless binfmt_misc knows qemu.
			t.Skipf("cannot run a copy of this test binary as a client: %v", err)
		}
		if err != nil {
			t.Fatalf("client: %v: %s", err, out)
		}
		return string(out)
	}
}

// peerHelper posts a checkpoint request over sock and prints the status.
func peerHelper(sock string) {
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Post("http://swavd/v1/checkpoint", "", nil)
	if err != nil {
		fmt.Println("error", err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("status %d %s\n", resp.StatusCode, body)
}

// The fallback for kernels without SO_PEERGROUPS reads the same groups.
func TestProcGroupsMatchGetgroups(t *testing.T) {
	got, err := procGroups(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := syscall.Getgroups()
	if len(got) != len(want) {
		t.Fatalf("/proc says %v, getgroups %v", got, want)
	}
	for i := range want {
		if got[i] != uint32(want[i]) {
			t.Fatalf("/proc says %v, getgroups %v", got, want)
		}
	}
}
