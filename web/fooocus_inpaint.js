// Fooocus Inpaint for ComfyUI: editor behaviour of the pack's own nodes (nothing else is touched).
//
// Expert inputs are flagged `advanced` in the node definitions (/object_info). The frontend copies the
// flag to `widget.options.advanced`, but the canvas folds only widgets whose own `advanced` property is
// set (it then offers "Show Advanced" / "Hide Advanced" in the node's context menu). Set that property on
// the pack's nodes, so their expert widgets start folded, as newer frontends do by themselves.
import { app } from "../../scripts/app.js";

const PACK_PREFIX = "FooocusInpaint_";

app.registerExtension({
  name: "comfyui-fooocus-inpaint.advancedWidgets",
  nodeCreated(node) {
    const type = String(node.comfyClass || node.type || "");
    if (!type.startsWith(PACK_PREFIX)) return;
    let folded = false;
    for (const w of node.widgets || []) {
      if (w.options && w.options.advanced && !w.advanced) {
        w.advanced = true;
        folded = true;
      }
    }
    if (folded && typeof node.computeSize === "function" && typeof node.setSize === "function") {
      const [w, h] = node.computeSize();
      node.setSize([Math.max(node.size[0], w), h]);
    }
  },
});
