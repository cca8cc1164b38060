package main

import (
	"strings"
	"testing"
)

func TestEvalCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"eval"}, 2, "want 'eval knn' or 'eval linear'"},
		{[]string{"eval", "svm"}, 2, `got "svm"`},
		{[]string{"eval", "linear", "-h"}, 0, "-finetune"},
		{[]string{"eval", "knn", "-h"}, 0, "-random-init"},
		{[]string{"eval", "linear"}, 2, "--checkpoint DIR or --random-init FLOW"},
		{[]string{"eval", "linear", "--random-init", "simclr", "--finetune"}, 2, "--finetune needs --epochs"},
		{[]string{"eval", "linear", "--random-init", "simclr", "--epochs", "3"}, 2, "--finetune only"},
		{[]string{"eval", "linear", "--checkpoint", "/no/such/folder"}, 1, "not a complete contrastream checkpoint"},
		{[]string{"eval", "knn", "--checkpoint", "/no/such/folder", "extra"}, 2, `unexpected argument "extra"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := cli(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("code %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}
