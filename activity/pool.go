package activity

// DefaultPool is the pool of the tasks that name none. Until an operator
// sets its slots it has no limit (admission is skipped for its tasks).
const DefaultPool = "default_pool"

// PoolSlotsMax bounds a pool's slots and a task's pool_slots.
const PoolSlotsMax = 1_000_000

// ValidatePool checks a pool name: 1-250 characters of [A-Za-z0-9_-].
func ValidatePool(name string) error {
	if !onlyOf(name, 250, func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}) {
		return invalid("pool %q must be 1-250 characters of [A-Za-z0-9_-]", CutValue(name))
	}
	return nil
}

// Pool is a named pool as operators set it and the API shows it.
type Pool struct {
	Name string `json:"name"`
	// Slots is how many slots the tasks of the pool may take at once; -1
	// means no limit (default_pool until it is set).
	Slots int `json:"slots"`
	// IncludeDeferred makes deferred tasks keep their slots.
	IncludeDeferred bool   `json:"include_deferred,omitempty"`
	Description     string `json:"description,omitempty"`

	// The counts below are filled in by the API (read only).

	// Occupied is the slots held by admitted tasks (queued to a worker,
	// running, or deferred with include_deferred); Open is what is left.
	Occupied int `json:"occupied"`
	Open     int `json:"open"`
	// Running, Queued and Deferred count the admitted tasks by state.
	Running  int `json:"running"`
	Queued   int `json:"queued"`
	Deferred int `json:"deferred"`
	// Waiting counts the tasks waiting for admission, and WaitingSlots the
	// slots they want.
	Waiting      int `json:"waiting"`
	WaitingSlots int `json:"waiting_slots"`
}
