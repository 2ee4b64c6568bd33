"""Which SavedModels cnnbuild runs: only those whose graph holds nothing but inference ops.

A SavedModel is a program (TensorFlow's own security guidance says so): its serving function
may call tf.io.write_file, a py_function, a file-reading dataset, a summary writer. Keras's
safe mode guards model.keras files; nothing guards a SavedModel. So before predict, evaluate
or sample loads one, `refuse_unless_inference` reads its saved_model.pb with TensorFlow's
protos alone (nothing is loaded, restored or executed), walks every node of every meta
graph and every function of the function library, recursively, and refuses the model when
any op is not on the list below, naming the ops and the functions that hold them. The user
who trusts the model's maker says so with --trust-model (`trusted=True`).

What the list holds, and why:
  INFERENCE_OPS   arithmetic, reductions, comparisons, shapes and slicing, convolutions,
                  pooling, normalisation, activations, resizing, casts, function calls and
                  control flow (their bodies are walked too), in-memory variables, Assert
                  (it fails a call; it writes nothing). Every op of cnnbuild's own exports
                  (classifier, GAN generator) is here, plus the neighbours a model of another
                  Keras version would use for the same layers. None of them touches a file,
                  the network, a process, Python, the log or a summary.
  SAVER_OPS       SaveV2, RestoreV2, MergeV2Checkpoints and their filename helpers: every
                  SavedModel carries a `_traced_save` / `_traced_restore` function pair for
                  its checkpoint, named by the meta graph's saver_def. They are allowed only in
                  functions reached from the saver_def's nodes alone; the same function
                  reached from anywhere else (a serving function) gets the inference list.
                  tf.saved_model.load restores variables with its own ops and never calls them.
What is left out on purpose (an op not listed is refused, so these are examples): ReadFile,
WriteFile, MatchingFiles and every tf.io.gfile op; datasets and readers (they open files);
lookup tables initialised from text files; PyFunc, EagerPyFunc; Print, PrintV2; every summary
op; save and restore outside the saver; DebugIdentity (writes dumps); ImmutableConst (maps a
file); Send, Recv, Rpc and collective ops; random ops (inference needs none).

The fingerprint in export.json (source_fingerprint) says which model an export came from, for
staleness only: anyone who can write the folder can recompute it, so it vouches for nothing.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UsageError

TRUST_FLAG = "--trust-model"

INFERENCE_OPS = frozenset("""
    Placeholder PlaceholderWithDefault Const Identity IdentityN NoOp StopGradient EnsureShape CheckNumerics Assert
    PartitionedCall StatefulPartitionedCall If StatelessIf While StatelessWhile Case StatelessCase
    VarHandleOp ReadVariableOp AssignVariableOp VarIsInitializedOp DisableCopyOnRead
    Shape ShapeN Size Rank Reshape Squeeze ExpandDims Pack Unpack Concat ConcatV2 Split SplitV Slice StridedSlice
    Gather GatherV2 GatherNd Transpose Tile Fill ZerosLike OnesLike Pad PadV2 MirrorPad Range OneHot Where
    Select SelectV2 BroadcastTo BroadcastArgs Cast ReverseV2 DepthToSpace SpaceToDepth ClipByValue TopKV2
    ResizeBilinear ResizeNearestNeighbor ResizeBicubic ResizeArea ScaleAndTranslate
    Add AddV2 AddN Sub Mul MulNoNan Div DivNoNan RealDiv FloorDiv FloorMod TruncateDiv Neg Abs Sign Square Sqrt Rsqrt
    Exp Expm1 Log Log1p Pow Maximum Minimum Round Rint Floor Ceil Reciprocal Inv Tanh Sigmoid Erf Sin Cos
    SquaredDifference Sum Mean Max Min Prod All Any ArgMax ArgMin MatMul BatchMatMul BatchMatMulV2 BatchMatMulV3
    Einsum Cumsum Equal NotEqual Less LessEqual Greater GreaterEqual LogicalAnd LogicalOr LogicalNot IsFinite IsNan
    IsInf L2Loss
    Conv2D Conv2DBackpropInput Conv3D Conv3DBackpropInputV2 DepthwiseConv2dNative BiasAdd Relu Relu6 Elu Selu LeakyRelu
    Softplus Softsign Softmax LogSoftmax MaxPool MaxPoolV2 MaxPool3D AvgPool AvgPool3D FusedBatchNorm
    FusedBatchNormV2 FusedBatchNormV3 LRN
""".split())

SAVER_OPS = frozenset("SaveV2 RestoreV2 MergeV2Checkpoints ShardedFilename StringJoin StaticRegexFullMatch".split())


class UntrustedModel(UsageError):
    """A SavedModel whose graph holds ops other than inference ops (exit status 2)."""


def refuse_unless_inference(folder, trusted: bool = False) -> None:
    """Raise UntrustedModel unless every op of the SavedModel in `folder` is an inference op
    (or `trusted`). Reads saved_model.pb only."""
    if trusted:
        return
    found = foreign_ops(Path(folder) / "saved_model.pb")
    if found:
        shown = "; ".join(f"{op} (in {', '.join(sorted(places)[:2])}{' …' if len(places) > 2 else ''})"
                          for op, places in sorted(found.items()))
        raise UntrustedModel(
            f"{folder}: the SavedModel holds ops that are not inference ops: {shown}; nothing was loaded or run",
            f"a SavedModel is a program and cnnbuild runs only graphs of inference ops (cnnbuild/serve/"
            f"allowlist.py lists them); if you trust whoever made this model, pass {TRUST_FLAG}")


def foreign_ops(path: Path) -> dict:
    """{op type: {where}} for every op of the SavedModel at `path` outside the allowlist."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2
    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString(path.read_bytes())
    except (OSError, DecodeError, RuntimeError, ValueError) as e:
        raise UntrustedModel(f"{path}: cannot be read as a SavedModel ({type(e).__name__}); nothing was loaded",
                             "export it again with cnnbuild export RUN_DIR") from None
    found: dict = {}
    for meta_graph in saved.meta_graphs:
        graph = meta_graph.graph_def
        functions = {function.signature.name: function for function in graph.library.function}
        saver_nodes = {meta_graph.saver_def.restore_op_name.split(":")[0],
                       meta_graph.saver_def.save_tensor_name.split(":")[0]} - {""}
        saver_only = saver_functions(graph, functions, saver_nodes)
        for node in graph.node:
            _judge(node, "the graph", INFERENCE_OPS, functions, found)
        for name, function in functions.items():
            allowed = INFERENCE_OPS | SAVER_OPS if name in saver_only else INFERENCE_OPS
            for node in function.node_def:
                _judge(node, f"function {name}", allowed, functions, found)
    return found


def _judge(node, where: str, allowed: frozenset, functions: dict, found: dict) -> None:
    if node.op not in allowed and node.op not in functions:    # a node may call a library function by name
        found.setdefault(node.op, set()).add(where)


def called(nodes, functions: dict) -> set:
    """The library functions `nodes` call: by op name, or through a function attribute
    (StatefulPartitionedCall's f, If's branches, While's cond and body, …)."""
    out = set()
    for node in nodes:
        if node.op in functions:
            out.add(node.op)
        for value in node.attr.values():
            if value.HasField("func"):
                out.add(value.func.name)
            if value.HasField("list"):
                out.update(f.name for f in value.list.func)
    return out


def reach(roots: set, functions: dict) -> set:
    """Every function reachable from `roots`, the roots included."""
    seen, todo = set(), [name for name in roots if name in functions]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(callee for callee in called(functions[name].node_def, functions) if callee not in seen)
    return seen


def saver_functions(graph, functions: dict, saver_nodes: set) -> set:
    """The functions reached from the saver_def's nodes and from nothing else (no other graph
    node, no other library function that is not itself the saver's)."""
    from_saver = reach(called([node for node in graph.node if node.name in saver_nodes], functions), functions)
    other_roots = called([node for node in graph.node if node.name not in saver_nodes], functions) \
        | (set(functions) - from_saver)
    return from_saver - reach(other_roots, functions)
