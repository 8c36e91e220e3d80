package daemon

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerCred is who is at the other end of an API connection, as the kernel
// saw them when they connected: user, primary group and the supplementary
// groups of that process (not what /etc/group lists for the user: a
// process may hold a group given by systemd's SupplementaryGroups=, or
// have dropped one it is listed in).
type peerCred struct {
	uid, gid uint32
	groups   []uint32
	ok       bool
}

// credKey is the request context's key of the connection's peerCred.
type credKey struct{}

// withPeerCred is the API server's ConnContext: the credentials are read
// once per connection, when it is accepted.
func withPeerCred(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, credKey{}, connCred(c))
}

// connCred reads the credentials of a Unix connection's peer; they are not
// ok (writes are refused) for any other connection.
func connCred(c net.Conn) peerCred {
	if w, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = w.NetConn()
	}
	var pc peerCred
	if uc, ok := c.(*net.UnixConn); ok {
		if raw, err := uc.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) { pc, _ = readPeerCred(int(fd)) })
		}
	}
	return pc
}

// inGroup reports whether the peer process holds gid.
func (pc peerCred) inGroup(gid uint32) bool {
	if pc.gid == gid {
		return true
	}
	for _, g := range pc.groups {
		if g == gid {
			return true
		}
	}
	return false
}

// soPeerGroups is SO_PEERGROUPS (Linux 4.13), 59 on amd64 and arm64; x/sys
// does not name it.
const soPeerGroups = 59

// readPeerCred reads the peer's credentials from the socket fd: SO_PEERCRED,
// then SO_PEERGROUPS, or on kernels without it the Groups line of the
// peer's /proc/PID/status, read at once so the process is still there.
func readPeerCred(fd int) (peerCred, error) {
	cr, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return peerCred{}, err
	}
	pc := peerCred{uid: cr.Uid, gid: cr.Gid, ok: true}
	if pc.groups, err = peerGroups(fd); err != nil {
		if pc.groups, err = procGroups(int(cr.Pid)); err != nil {
			return peerCred{}, fmt.Errorf("the caller's groups: %w", err)
		}
	}
	return pc, nil
}

func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 64)
	for {
		n := uint32(4 * len(buf))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, soPeerGroups,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch {
		case e == unix.ERANGE && int(n/4) > len(buf):
			buf = make([]uint32, n/4)
		case e != 0:
			return nil, e
		default:
			return buf[:n/4], nil
		}
	}
}

func procGroups(pid int) ([]uint32, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Groups:")
		if !ok {
			continue
		}
		var gs []uint32
		for _, field := range strings.Fields(rest) {
			g, err := strconv.ParseUint(field, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("/proc/%d/status: group %q", pid, field)
			}
			gs = append(gs, uint32(g))
		}
		return gs, nil
	}
	return nil, fmt.Errorf("/proc/%d/status: no Groups line", pid)
}
