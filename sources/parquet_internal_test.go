package sources

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

// TestReadColumns checks the errors of readColumns for a Parquet row group
// read in an unexpected shape: they name the image column's type as read,
// not another column's.
func TestReadColumns(t *testing.T) {
	bytesOnly := arrow.StructOf(arrow.Field{Name: "bytes", Type: arrow.BinaryTypes.Binary, Nullable: true})
	pathOnly := arrow.StructOf(arrow.Field{Name: "path", Type: arrow.BinaryTypes.String, Nullable: true})
	schema := func(image arrow.DataType) *arrow.Schema {
		return arrow.NewSchema([]arrow.Field{
			{Name: "label", Type: arrow.PrimitiveTypes.Int64}, // field 0: not the image
			{Name: "image", Type: image},
		}, nil)
	}
	for _, tt := range []struct {
		name  string
		sc    *arrow.Schema
		label string
		want  string // error text, "" for none
	}{
		{"hf", schema(bytesOnly), "label", ""},
		{"hf read as binary", schema(arrow.BinaryTypes.Binary), "label", `image column "image" read as binary, not a struct`},
		{"hf read without bytes", schema(pathOnly), "", `image column "image" read as struct<path: utf8 nullable>, without its bytes`},
		{"no label read", schema(bytesOnly), "y", `label column "y" not read`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := readColumns(tt.sc, "image", tt.label, true)
			if tt.want == "" {
				if err != nil || l.image != 1 || l.label != 0 || l.bytesIdx != 0 {
					t.Fatalf("got %+v, %v", l, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}
