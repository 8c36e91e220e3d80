package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
)

// Listen opens the API socket. "fd://" takes the socket systemd passed
// (socket activation). Otherwise a Unix socket is created at path with
// mode 0660 and, when group is set, that group; a leftover socket file is
// replaced only if nothing answers on it, and anything that is not a
// socket (a file, a directory, a link) is never replaced.
func Listen(path, group string) (net.Listener, error) {
	if path == "fd://" {
		ls, err := activation.Listeners()
		if err != nil {
			return nil, fmt.Errorf("socket activation: %w", err)
		}
		if len(ls) != 1 || ls[0] == nil {
			return nil, fmt.Errorf("socket activation: systemd passed %d sockets, want 1 (is swavd.socket enabled?)", len(ls))
		}
		return ls[0], nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("socket: %s exists and is not a socket (%s); refusing to replace it", path, fi.Mode().Type())
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket: %s: another swavd is serving there", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("socket: removing stale %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	fail := func(err error) (net.Listener, error) { ln.Close(); return nil, fmt.Errorf("socket: %s: %w", path, err) }
	if err := os.Chmod(path, 0o660); err != nil {
		return fail(err)
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return fail(err)
		}
		gid, err := strconv.Atoi(g.Gid)
		if err != nil {
			return fail(errors.New("bad gid " + g.Gid))
		}
		if err := os.Chown(path, -1, gid); err != nil {
			return fail(err)
		}
	}
	return ln, nil
}
