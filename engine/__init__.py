"""Pure maths of the Fooocus inpaint pipeline.

Every module here works on numpy arrays and torch tensors only; none imports ComfyUI, so the
functions can be unit-tested (and reused) without a host. Each public function names the Fooocus
2.5.5 function it reproduces in its docstring.

Conventions, unless a docstring says otherwise:
- images are ``uint8`` arrays ``H x W x 3`` (RGB) or float32 tensors ``[B, H, W, C]`` in [0, 1]
  (ComfyUI's IMAGE layout);
- masks are ``uint8`` arrays ``H x W`` with 0 = keep and 255 = repaint, or float32 tensors
  ``[B, H, W]`` in [0, 1] (ComfyUI's MASK layout);
- crop boxes are ``(a, b, c, d)``: rows ``a:b`` and columns ``c:d``, half-open.
"""
