package local_test

import (
	"testing"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/transport/local"
	"github.com/muster-run/muster/internal/transport/transporttest"
)

func TestConformance(t *testing.T) {
	transporttest.Run(t,
		func(t *testing.T) muster.Transport { return local.New() },
		func(t *testing.T) *muster.Target {
			return &muster.Target{Name: "localhost", Transport: "local", Host: "localhost"}
		})
}
