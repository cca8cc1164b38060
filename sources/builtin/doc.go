// Package builtin is contrastream's built-in dataset: a balanced slice of
// Fashion-MNIST (10,000 training and 2,000 test images, 28×28 gray, ten
// classes) stored as Hugging Face-layout Parquet and embedded in the binary,
// so that the main job runs with nothing to download.
//
// Fashion-MNIST is © Zalando SE, released under the MIT licence
// (https://github.com/zalandoresearch/fashion-mnist); see data/LICENSE. The
// files were made by the project's own ingest from Debian's
// dataset-fashion-mnist package:
//
//	contrastream ingest --per-class 1000 --out sources/builtin/data/train.parquet \
//	    --labels /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz \
//	    /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
//	contrastream ingest --per-class 200 --out sources/builtin/data/test.parquet \
//	    --labels /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz \
//	    /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
package builtin
