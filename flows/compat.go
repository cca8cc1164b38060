package flows

import (
	"bytes"
	"slices"
	"strconv"

	"gopkg.in/yaml.v3"
)

// zeroWasDefault names, by stage kind, the fields whose 0 used to mean
// their default and is now an error: the temperatures, and the optimizer's
// lr, trust_coefficient and eps.
var zeroWasDefault = map[string][]string{
	"loss":     {"temperature"},
	"knn":      {"temperature"},
	"optimize": {"lr", "trust_coefficient", "eps"},
}

// removedFields names, by stage kind, the fields that this version no
// longer has and refuses, which earlier versions recorded in every
// checkpoint's flow: the encode stage's replicas (a count chosen from
// GOMAXPROCS; shard, workers and bn_group replaced it).
var removedFields = map[string][]string{
	"encode": {"replicas"},
}

// UpgradeRecordedFlow returns the flow spec that a checkpoint recorded
// (sinks.CheckpointInfo.Flow) as this version means it. Checkpoints of
// earlier versions record "temperature: 0", "lr: 0", "trust_coefficient: 0"
// or "eps: 0" for such a field that the flow left out (every prebuilt flow
// records trust_coefficient and eps so), meaning its default; this version
// refuses an explicit 0 there, so those zeros become null, the default. A
// flow this version records never holds such a 0 (its spec was refused
// before the run), and comes back unchanged, as does text that is not a
// flow (ParseSpec reports it).
//
// Earlier versions also recorded the encode stage's replicas, which this
// version refuses (the flow now fixes the shards and BatchNorm groups, by
// default from the batch size): it is dropped, so the run resumes with the
// defaults, BatchNorm over the whole batch rather than per replica.
func UpgradeRecordedFlow(flow string) string {
	var doc yaml.Node
	if yaml.Unmarshal([]byte(flow), &doc) != nil || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return flow
	}
	changed := false
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := root.Content[i].Value; k != "stages" && k != "sinks" || root.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		for _, st := range root.Content[i+1].Content {
			if st.Kind != yaml.MappingNode {
				continue
			}
			var fields, removed []string
			for j := 0; j+1 < len(st.Content); j += 2 {
				if st.Content[j].Value == "kind" {
					fields, removed = zeroWasDefault[st.Content[j+1].Value], removedFields[st.Content[j+1].Value]
				}
			}
			for j := 0; j+1 < len(st.Content); {
				if slices.Contains(removed, st.Content[j].Value) {
					st.Content = slices.Delete(st.Content, j, j+2)
					changed = true
					continue
				}
				j += 2
			}
			for j := 0; j+1 < len(st.Content); j += 2 {
				v := st.Content[j+1]
				if !slices.Contains(fields, st.Content[j].Value) || v.Kind != yaml.ScalarNode {
					continue
				}
				if f, err := strconv.ParseFloat(v.Value, 64); err == nil && f == 0 {
					v.Tag, v.Value, v.Style = "!!null", "null", 0
					changed = true
				}
			}
		}
	}
	if !changed {
		return flow
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2) // as pipeline.Spec.YAML writes it
	if enc.Encode(&doc) != nil || enc.Close() != nil {
		return flow
	}
	return buf.String()
}
