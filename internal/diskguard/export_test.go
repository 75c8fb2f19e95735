package diskguard

// WithStatfs sets the free/total source of a Guard's Options, for tests.
func WithStatfs(o Options, f func(dir string) (free, total int64, err error)) Options {
	o.statfs = f
	return o
}
