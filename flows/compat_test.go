package flows_test

import (
	"strings"
	"testing"

	"github.com/contrastream/contrastream/flows"
	"github.com/contrastream/contrastream/pipeline"
	"github.com/contrastream/contrastream/stages/encode"
)

// TestRecordedReplicasDropped: earlier versions recorded the encode
// stage's replicas in every checkpoint's flow (a count chosen from
// GOMAXPROCS, BatchNorm per replica). This version refuses the field with
// an error that says what replaces it, and UpgradeRecordedFlow drops it,
// so such a checkpoint's flow parses with the default shards and
// BatchNorm group; a flow without it comes back unchanged.
func TestRecordedReplicasDropped(t *testing.T) {
	for _, name := range []string{"moco", "simclr"} {
		t.Run(name, func(t *testing.T) {
			spec, err := flows.Load(name, nil)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := spec.YAML()
			if err != nil {
				t.Fatal(err)
			}
			now := string(rec)
			if got := flows.UpgradeRecordedFlow(now); got != now {
				t.Errorf("this version's flow was changed:\n%s\nto\n%s", now, got)
			}
			if strings.Contains(now, "replicas") {
				t.Errorf("this version records replicas:\n%s", now)
			}
			const anchor = "    out: 128\n"
			if !strings.Contains(now, "kind: encode") || !strings.Contains(now, anchor) {
				t.Fatalf("the recorded flow has no encode stage with %q:\n%s", anchor, now)
			}
			for _, v := range []string{"0", "2", "7"} {
				old := strings.Replace(now, anchor, anchor+"    replicas: "+v+"\n", 1)
				_, err := pipeline.ParseSpec([]byte(old), "state.json", nil, nil)
				if err == nil {
					t.Fatalf("replicas: %s parses; the test proves nothing", v)
				}
				for _, s := range []string{"replicas", "shard", "workers", "bn_group"} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("replicas: %s: error %q does not say %q", v, err, s)
					}
				}
				up := flows.UpgradeRecordedFlow(old)
				if strings.Contains(up, "replicas") {
					t.Errorf("replicas: %s survives the upgrade:\n%s", v, up)
				}
				got, err := pipeline.ParseSpec([]byte(up), "state.json", nil, nil)
				if err != nil {
					t.Fatalf("replicas: %s: the upgraded flow: %v", v, err)
				}
				for _, s := range got.Stages {
					if c, ok := s.Config.(*encode.StageConfig); ok && (c.Replicas != nil || c.Shard != 0 || c.BNGroup != 0 || c.Workers != 0) {
						t.Errorf("replicas: %s: upgraded encode config %+v, want the defaults", v, *c)
					}
				}
			}
		})
	}
}
