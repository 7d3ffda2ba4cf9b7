// Package backupcode generates and hashes one-time recovery codes.
//
// A code is 10 characters from an alphabet without look-alikes (no 0/O,
// 1/I/L), shown as XXXXX-XXXXX; about 50 bits of entropy. Codes are stored
// only as bcrypt hashes. Consumption is atomic in the database (see
// authpg.Store.ConsumeBackupCode).
package backupcode

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Count is how many codes a set has.
const Count = 10

const alphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

// Generate returns n fresh codes.
func Generate(n int) ([]string, error) {
	out := make([]string, 0, n)
	seen := map[string]bool{}
	max := big.NewInt(int64(len(alphabet)))
	for len(out) < n {
		var b strings.Builder
		for i := 0; i < 10; i++ {
			if i == 5 {
				b.WriteByte('-')
			}
			k, err := rand.Int(rand.Reader, max)
			if err != nil {
				return nil, fmt.Errorf("backupcode: random: %w", err)
			}
			b.WriteByte(alphabet[k.Int64()])
		}
		if c := b.String(); !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out, nil
}

// Normalize makes user input comparable: upper case, no spaces or dashes.
func Normalize(code string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '\t':
			return -1
		}
		return r
	}, strings.ToUpper(strings.TrimSpace(code)))
}

// Hash hashes each code (normalized) with bcrypt at cost (0 means
// bcrypt.DefaultCost).
func Hash(codes []string, cost int) ([]string, error) {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	out := make([]string, len(codes))
	for i, c := range codes {
		h, err := bcrypt.GenerateFromPassword([]byte(Normalize(c)), cost)
		if err != nil {
			return nil, fmt.Errorf("backupcode: bcrypt: %w", err)
		}
		out[i] = string(h)
	}
	return out, nil
}

// Match reports whether code matches hash.
func Match(hash, code string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(Normalize(code))) == nil
}
