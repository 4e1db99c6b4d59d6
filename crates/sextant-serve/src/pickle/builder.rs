//! Pickle bytes for tests, built opcode by opcode (opcodes as CPython's
//! `pickletools` describes them).

use super::op;

/// Builds pickle bytes opcode by opcode.
pub(crate) struct Bytes(pub(crate) Vec<u8>);

impl Bytes {
    pub(crate) fn proto(version: u8) -> Bytes {
        Bytes(vec![op::PROTO, version])
    }

    pub(crate) fn raw(mut self, bytes: &[u8]) -> Bytes {
        self.0.extend_from_slice(bytes);
        self
    }

    pub(crate) fn op(self, opcode: u8) -> Bytes {
        self.raw(&[opcode])
    }

    pub(crate) fn int(self, value: i32) -> Bytes {
        self.op(op::BININT).raw(&value.to_le_bytes())
    }

    pub(crate) fn str(self, text: &str) -> Bytes {
        let length = u32::try_from(text.len()).unwrap();
        self.op(op::BINUNICODE)
            .raw(&length.to_le_bytes())
            .raw(text.as_bytes())
    }

    pub(crate) fn bytes(self, data: &[u8]) -> Bytes {
        let length = u32::try_from(data.len()).unwrap();
        self.op(op::BINBYTES).raw(&length.to_le_bytes()).raw(data)
    }

    pub(crate) fn global(self, module: &str, name: &str) -> Bytes {
        self.str(module).str(name).op(op::STACK_GLOBAL)
    }

    /// `numpy.dtype(code, False, True)` with a version 3 state.
    pub(crate) fn dtype(self, code: &str, byte_order: &str, item_size: i32) -> Bytes {
        self.global("numpy", "dtype")
            .str(code)
            .op(op::NEWFALSE)
            .op(op::NEWTRUE)
            .op(op::TUPLE3)
            .op(op::REDUCE)
            .op(op::MARK)
            .int(3)
            .str(byte_order)
            .op(op::NONE)
            .op(op::NONE)
            .op(op::NONE)
            .int(item_size)
            .int(-1)
            .int(0)
            .op(op::TUPLE)
            .op(op::BUILD)
    }

    /// `_reconstruct(ndarray, (0,), b"b")` with the state `(1, shape,
    /// dtype, is_fortran, data)`; the dtype is written by `dtype`.
    pub(crate) fn array(
        self,
        shape: &[i32],
        fortran: bool,
        dtype: impl FnOnce(Bytes) -> Bytes,
        data: &[u8],
    ) -> Bytes {
        let mut b = self
            .global("numpy._core.multiarray", "_reconstruct")
            .global("numpy", "ndarray")
            .int(0)
            .op(op::TUPLE1)
            .bytes(b"b")
            .op(op::TUPLE3)
            .op(op::REDUCE)
            .op(op::MARK)
            .int(1)
            .op(op::MARK);
        for &d in shape {
            b = b.int(d);
        }
        b = dtype(b.op(op::TUPLE));
        b.op(if fortran { op::NEWTRUE } else { op::NEWFALSE })
            .bytes(data)
            .op(op::TUPLE)
            .op(op::BUILD)
    }

    pub(crate) fn stop(self) -> Vec<u8> {
        self.op(op::STOP).0
    }

    /// An object as `copyreg.__reduce_ex__` pickles instances at protocol 2
    /// and above: `cls.__new__(cls)`, then `BUILD` with the attribute dict
    /// that `attributes` writes as key/value pairs.
    pub(crate) fn object(
        self,
        module: &str,
        name: &str,
        attributes: impl FnOnce(Bytes) -> Bytes,
    ) -> Bytes {
        let b = self
            .global(module, name)
            .op(op::EMPTY_TUPLE)
            .op(op::NEWOBJ)
            .op(op::EMPTY_DICT)
            .op(op::MARK);
        attributes(b).op(op::SETITEMS).op(op::BUILD)
    }

    /// A one-dimensional float64 array.
    pub(crate) fn f64_array(self, values: &[f64]) -> Bytes {
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let len = i32::try_from(values.len()).unwrap();
        self.array(&[len], false, |b| b.dtype("f8", "<", -1), &data)
    }
}
