// Package builtin is contrastream's built-in dataset: a balanced slice of
// Fashion-MNIST (10,000 training and 2,000 test images, 28×28 gray, ten
// classes) stored as Hugging Face-layout Parquet and embedded in the binary,
// so that the main job runs with nothing to download.
//
// Fashion-MNIST is © Zalando SE, released under the MIT licence
// (https://github.com/zalandoresearch/fashion-mnist); see data/LICENSE. The
// files were made by the project's own ingest from Debian's
// dataset-fashion-mnist package (the first 1000, resp. 200, images of each
// class in file order), byte for byte:
//
//	F=/usr/share/datasets/fashion-mnist
//	C="T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot"
//	go run ./cmd/contrastream ingest --classes "$C" --per-class 1000 \
//	    --out sources/builtin/data/train.parquet \
//	    --labels $F/train-labels-idx1-ubyte.gz $F/train-images-idx3-ubyte.gz
//	go run ./cmd/contrastream ingest --classes "$C" --per-class 200 \
//	    --out sources/builtin/data/test.parquet \
//	    --labels $F/t10k-labels-idx1-ubyte.gz $F/t10k-images-idx3-ubyte.gz
package builtin
