// Command contrastream trains image encoders by contrastive learning and
// handles the datasets they learn from.
//
//	contrastream train [flags]          run a flow (default: the built-in data)
//	contrastream ingest [flags] SRC     convert IDX files or an image folder to Parquet
//	contrastream inspect SRC            summarise a dataset
//	contrastream preview [flags]        write a PNG of images beside their two views
//	contrastream flows [NAME]           list the prebuilt flows or print one
//
// Run "contrastream COMMAND -h" for a command's flags.
package main
