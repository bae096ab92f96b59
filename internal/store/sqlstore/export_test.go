package sqlstore

// The claims' queries, for plan_test.go.
const (
	OrderedQuery    = ordered
	CandidatesQuery = candidates
	PullReadyCond   = pullReady
)
