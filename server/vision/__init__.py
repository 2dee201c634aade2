"""What the server reads out of a picture by itself, beside the interaction model:
barcodes (zxing-cpp) and, optionally, printed text (an OCR backend).

A leaf: it knows images and strings, nothing about sessions or turns. Decoding
blocks; callers run it off the event loop. The heavy libraries are imported only
when a decoder is first used, so importing this package is cheap.
"""
