package frontend

import (
	"context"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// listen opens the TCP listener for addr. With reusePort the socket gets
// SO_REUSEPORT before bind, so a second multigres process started with the
// same configuration can bind the same address while this one drains: the
// kernel spreads new connections over every open listener, and once the
// old process closes its listener (on SIGTERM) they all go to the new one.
// Both processes must set the option, which is why it is a restart-only key.
func listen(addr string, reusePort bool) (net.Listener, error) {
	var lc net.ListenConfig
	if reusePort {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				// The syscall package has no SO_REUSEPORT on Linux;
				// x/sys/unix (already in go.mod) has the right value
				// for each platform.
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}); err != nil {
				return fmt.Errorf("control: %w", err)
			}
			if serr != nil {
				return fmt.Errorf("setsockopt SO_REUSEPORT: %w", serr)
			}
			return nil
		}
	}
	// net's error already names the operation and the address.
	return lc.Listen(context.Background(), "tcp", addr)
}
