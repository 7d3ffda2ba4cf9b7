package config

// Setting is one key's effective value as the admin console's SHOW CONFIG
// shows it: formatted as in multigres.conf, secrets redacted.
type Setting struct {
	Name       string
	Value      string // <redacted> for a non-empty secret
	Default    string
	Reloadable bool
}

// Settings returns every key's value in c, in table order, with secrets
// redacted as WriteTo does.
func (c *Config) Settings() []Setting {
	out := make([]Setting, 0, len(keyTable))
	for i := range keyTable {
		k := &keyTable[i]
		v := k.kind.format(k.get(c))
		if k.Secret && v != "" {
			v = Redacted
		}
		def := k.Default
		if k.Secret && def != "" {
			def = Redacted
		}
		out = append(out, Setting{Name: k.Name, Value: v, Default: def, Reloadable: k.Reloadable})
	}
	return out
}
