package results

import (
	"fmt"
	"strings"
)

// The markers in docs/benchmarks.md between which `mgbench docs` writes the
// latest results.
const (
	BeginMarker = "<!-- results:begin -->"
	EndMarker   = "<!-- results:end -->"
)

// ReplaceResults returns doc with everything between BeginMarker and
// EndMarker (each on a line of its own) replaced by content. The markers
// stay; an error says which one is missing or out of order.
func ReplaceResults(doc, content string) (string, error) {
	i := strings.Index(doc, BeginMarker)
	j := strings.Index(doc, EndMarker)
	switch {
	case i < 0:
		return "", fmt.Errorf("no %s line", BeginMarker)
	case j < 0:
		return "", fmt.Errorf("no %s line", EndMarker)
	case j < i:
		return "", fmt.Errorf("%s comes before %s", EndMarker, BeginMarker)
	case strings.Count(doc, BeginMarker) > 1 || strings.Count(doc, EndMarker) > 1:
		return "", fmt.Errorf("more than one %s or %s", BeginMarker, EndMarker)
	}
	content = strings.Trim(content, "\n")
	return doc[:i+len(BeginMarker)] + "\n\n" + content + "\n\n" + doc[j:], nil
}
