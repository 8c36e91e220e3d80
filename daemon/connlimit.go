package daemon

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
)

// reservedConns are connections kept for root and swavd's own user beyond
// daemon.max_connections, so that an operator's `swavctl checkpoint` gets
// through while others hold every ordinary slot.
const reservedConns = 16

// capListener caps the open API connections: past max, only root and
// swavd's own user are accepted, up to max+reservedConns; anything else is
// closed at once, before it costs more than its descriptor for a moment.
type capListener struct {
	net.Listener
	max     int64
	active  atomic.Int64
	refused atomic.Uint64
}

func newCapListener(ln net.Listener, max int) *capListener {
	return &capListener{Listener: ln, max: int64(max)}
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		n := l.active.Add(1)
		if n > l.max && (n > l.max+reservedConns || !privileged(c)) {
			l.active.Add(-1)
			l.refused.Add(1)
			c.Close()
			continue
		}
		return &countedConn{Conn: c, l: l}, nil
	}
}

// privileged reports whether the peer is root or swavd's own user.
func privileged(c net.Conn) bool {
	pc := connCred(c)
	return pc.ok && (pc.uid == 0 || int(pc.uid) == os.Getuid())
}

// countedConn gives its slot back when closed.
type countedConn struct {
	net.Conn
	l    *capListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.active.Add(-1) })
	return c.Conn.Close()
}

// NetConn is the connection underneath (for its credentials).
func (c *countedConn) NetConn() net.Conn { return c.Conn }
