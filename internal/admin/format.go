package admin

import (
	"strconv"
	"time"
)

// timeFormat is how times appear in SHOW output (PgBouncer's style).
const timeFormat = "2006-01-02 15:04:05 MST"

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

func itoa[T ~int | ~int64 | ~uint64 | ~uint32](v T) string {
	return strconv.FormatInt(int64(v), 10)
}

func fmtBool(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// seconds and micros split d as PgBouncer's maxwait / maxwait_us do.
func secondsMicros(d time.Duration) (string, string) {
	return itoa(int64(d / time.Second)), itoa(int64(d%time.Second) / 1000)
}

// micros is d in whole microseconds (PgBouncer's *_time columns).
func micros(d time.Duration) string { return itoa(d.Microseconds()) }

// perSecond is n divided by the time since since, rounded down.
func perSecond(n uint64, since, now time.Time) string {
	el := now.Sub(since).Seconds()
	if el < 1 {
		el = 1
	}
	return itoa(int64(float64(n) / el))
}

// avg is total/n in microseconds, 0 when n is 0.
func avg(total time.Duration, n uint64) string {
	if n == 0 {
		return "0"
	}
	return itoa(total.Microseconds() / int64(n))
}
