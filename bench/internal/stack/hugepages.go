package stack

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// Huge pages for shared_buffers when this machine can reserve them (root,
// and nobody else's reservation in the way): without them every new
// backend faults in each 4 KiB page of shared_buffers it touches, which on
// the 2-core reference VM was half of the server's CPU per transaction and
// most of the run-to-run noise. The previous reservation is restored when
// the run ends.
const (
	hugeWant    = 640 // 2 MiB pages: 1.25 GiB for 1 GB of shared_buffers and the rest of the segment
	hugeMinFree = 600
)

// HugePages is a reservation of huge pages (or the absence of one).
type HugePages struct {
	On      bool
	nrPath  string
	memPath string
	was     string // the reservation to restore, "" when nothing changed
}

// ReserveHugePages reserves them when wanted and possible; On says whether
// PostgreSQL can use them.
func ReserveHugePages(wanted bool) *HugePages {
	h := &HugePages{nrPath: "/proc/sys/vm/nr_hugepages", memPath: "/proc/meminfo"}
	if wanted {
		h.reserve()
	}
	return h
}

func (h *HugePages) reserve() {
	raw, err := os.ReadFile(h.nrPath)
	if err != nil {
		return
	}
	was := strings.TrimSpace(string(raw))
	n, err := strconv.Atoi(was)
	if err != nil {
		return
	}
	if n < hugeWant {
		if os.WriteFile(h.nrPath, []byte(strconv.Itoa(hugeWant)), 0) != nil {
			return
		}
		h.was = was
	}
	if free := meminfoValue(h.memPath, "HugePages_Free"); free >= hugeMinFree {
		h.On = true
		return
	}
	h.Restore()
}

// Restore puts the previous reservation back.
func (h *HugePages) Restore() {
	if h.was != "" {
		_ = os.WriteFile(h.nrPath, []byte(h.was), 0)
		h.was = ""
	}
}

// meminfoValue is a /proc/meminfo field's number, or -1.
func meminfoValue(path, field string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			v, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				return -1
			}
			return v
		}
	}
	return -1
}

// MemTotalKiB is the machine's memory in KiB (-1 when unknown).
func MemTotalKiB() int64 { return meminfoValue("/proc/meminfo", "MemTotal") }
