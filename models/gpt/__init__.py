"""The tiny GPT benchmark model: `model.py` is its shared truth, one `<framework>_impl.py` per framework."""
