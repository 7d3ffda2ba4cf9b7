package wire

import "strings"

// unsafeEncodings are PostgreSQL's client-only encodings whose multibyte
// characters may contain ASCII bytes such as \ and '. A proxy that reads
// SQL as UTF-8 (as the guard does) would see different string boundaries
// than the server, which converts from these first. Names are PostgreSQL's
// aliases (encnames.c) after normalisation.
var unsafeEncodings = map[string]bool{
	"sjis": true, "mskanji": true, "shiftjis": true, "win932": true, "windows932": true,
	"shiftjis2004": true,
	"big5":         true, "win950": true, "windows950": true,
	"gbk": true, "cp936": true, "win936": true, "windows936": true,
	"uhc": true, "win949": true, "windows949": true,
	"gb18030": true,
	"johab":   true,
}

// UnsafeClientEncoding reports whether a client_encoding value names one of
// those encodings. Names are normalised as PostgreSQL does: case folded and
// non-alphanumerics dropped.
func UnsafeClientEncoding(name string) bool {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return unsafeEncodings[b.String()]
}
