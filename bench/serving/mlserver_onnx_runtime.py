"""An MLServer runtime that runs an ONNX model in onnxruntime, in-process.

MLServer ships no ONNX runtime. This one isolates MLServer's own cost per
request (HTTP, pydantic, codecs, metrics) from the model's: onnxruntime
predicts one row of the benchmark forest in ~15 µs. run.py points MLServer
at it with `"implementation": "mlserver_onnx_runtime.OnnxRuntime"` and this
folder on PYTHONPATH.

The first input is decoded as a numpy array and cast to float32 (the ONNX
graph's input type); the answer is one output, `predict_proba`, the class
probabilities as onnxruntime returns them (FP32).
"""

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        path = await get_model_uri(self.settings)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        names = [o.name for o in self._session.get_outputs()]
        self._proba = names.index("probabilities") if "probabilities" in names else len(names) - 1
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        features = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        if features.ndim == 1:
            features = features.reshape(1, -1)
        proba = self._session.run(None, {self._input: features})[self._proba]
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[NumpyCodec.encode_output("predict_proba", proba)],
        )
