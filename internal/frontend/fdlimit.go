package frontend

import (
	"log/slog"
	"syscall"
)

// The open-files limit. Every client connection takes a descriptor, and in
// session mode its server connection another; past the process's limit,
// accept fails and clients time out with no answer. At start the soft
// limit is raised to the hard one, and clients are refused with 53300
// (like max_client_conn) once half of it, less a reserve for server
// connections, pools, listeners and files, is in use, so that
// max_client_conn = 0 never means "until the kernel says no".

// fdReserve is kept for listeners, the admin server, auth and resolver
// pools, log files and pooled server connections beyond one per client.
const fdReserve = 256

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit and
// returns the most client connections the limit leaves room for (0: no
// known limit).
func raiseFileLimit(logger *slog.Logger) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		logger.Warn("reading the open-files limit failed", "err", err)
		return 0
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			lim = raised
		} else {
			logger.Warn("raising the open-files limit failed", "soft", lim.Cur, "hard", lim.Max, "err", err)
		}
	}
	clients := clientsForFiles(lim.Cur)
	logger.Info("open-files limit", "limit", lim.Cur, "max_clients_by_files", clients)
	return clients
}

// clientsForFiles is the client connections n descriptors allow: two each
// (a session-mode client and its server connection), after the reserve.
func clientsForFiles(n uint64) int {
	if n > 1<<30 {
		return 0 // effectively unlimited
	}
	if n <= 2*fdReserve {
		return int(n / 4)
	}
	return int((n - fdReserve) / 2)
}
