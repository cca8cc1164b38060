package encode

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// The Vision Transformer's ops join opCases, so that TestOpGradients
// checks them against central differences and TestOpDoDiff their DoDiff
// against their SymDiff (run them alone with -run 'TestOp.*/vit').
func init() {
	opCases = append(opCases,
		vitCase("linear", [][]int{{5, 4}, {3, 4}, {3}}, func(st *runState) G.Op { return newLinear("test", st, 5, 4, 3) }),
		vitCase("layernorm", [][]int{{5, 6}, {6}, {6}}, func(st *runState) G.Op { return newLayerNorm("test", st, 5, 6, ViTLNEps) }),
		vitCase("gelu", [][]int{{4, 5}}, func(st *runState) G.Op { return newGELU("test", st, 4, 5) }),
		vitCase("add", [][]int{{3, 4}, {3, 4}}, func(st *runState) G.Op { return newAdd("test", st, 3, 4) }),
		vitCase("cls", [][]int{{2 * 3, 4}}, func(st *runState) G.Op { return newCLS("test", st, 2, 3, 4) }),
		// 2 images of 5 tokens, 2 heads of 3: qkv is 10×18.
		vitCase("attention", [][]int{{10, 18}}, func(st *runState) G.Op { return newAttention("test", st, 2, 5, 2, 3, 0.577) }),
		vitCase("attention 1 head", [][]int{{3, 12}}, func(st *runState) G.Op { return newAttention("test", st, 1, 3, 1, 4, 0.5) }),
		// 2 images of 2 channels, 6×4 in 2×2 patches: 6 patches, 7 tokens of 5.
		vitCase("patch_embed", [][]int{{2, 2, 6, 4}, {5, 2, 2, 2}, {5}, {1, 1, 5}, {1, 7, 5}},
			func(st *runState) G.Op { return newPatchEmbed("test", st, 2, 2, 6, 4, 2, 5) }),
	)
}

func vitCase(name string, shapes [][]int, op func(st *runState) G.Op) opCase {
	return opCase{
		name:   fmt.Sprintf("vit %s %v", name, shapes),
		shapes: shapes,
		apply: func(st *runState, in G.Nodes) (*G.Node, error) {
			return G.ApplyOp(op(st), in...)
		},
	}
}
