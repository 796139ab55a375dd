//! Typed views of the buffers a call is handed: parameter tables, their gradients, and
//! node embeddings (`[users; items]` rows), each checked against its layout once.

use crate::abi::*;

/// Read access to a plugin's parameter tables.
#[derive(Clone, Copy)]
pub struct Params<'a> {
    data: &'a [f32],
    layout: &'a [TableLayout],
}

impl<'a> Params<'a> {
    /// A view of `data` laid out by `layout` (tests and host code; plugins are handed one).
    pub fn new(data: &'a [f32], layout: &'a [TableLayout]) -> Self {
        Params { data, layout }
    }
    pub(super) fn from_abi(p: ParamsRef<'a>) -> Self {
        Params {
            data: p.data.as_slice(),
            layout: p.layout.as_slice(),
        }
    }
    /// Table `k` (declaration order) as a row-major slice.
    pub fn table(&self, k: usize) -> &'a [f32] {
        let l = self.layout[k];
        &self.data[l.offset..l.offset + l.rows * l.cols]
    }
    /// Where each table lies, in declaration order.
    pub fn layout(&self) -> &'a [TableLayout] {
        self.layout
    }
    /// The ABI view, to pass on to another plugin call.
    pub fn to_abi(self) -> ParamsRef<'a> {
        ParamsRef {
            data: self.data.into(),
            layout: self.layout.into(),
        }
    }
}

/// Write access to a plugin's gradient tables (accumulate with `+=`).
pub struct Grads<'a> {
    data: &'a mut [f32],
    layout: &'a [TableLayout],
}

impl<'a> Grads<'a> {
    /// A view of `data` laid out by `layout` (tests and host code; plugins are handed one).
    pub fn new(data: &'a mut [f32], layout: &'a [TableLayout]) -> Self {
        Grads { data, layout }
    }
    pub(super) fn from_abi(g: GradsMut<'a>) -> Self {
        Grads {
            data: g.data.into_mut_slice(),
            layout: g.layout.as_slice(),
        }
    }
    /// Gradient of table `k`.
    pub fn table_mut(&mut self, k: usize) -> &mut [f32] {
        let l = self.layout[k];
        &mut self.data[l.offset..l.offset + l.rows * l.cols]
    }
    /// A shorter-lived copy of this view, to lend out and keep using afterwards.
    pub fn reborrow(&mut self) -> Grads<'_> {
        Grads {
            data: self.data,
            layout: self.layout,
        }
    }
    /// The ABI view, to pass on to another plugin call.
    pub fn to_abi(&mut self) -> GradsMut<'_> {
        GradsMut {
            data: (&mut *self.data).into(),
            layout: self.layout.into(),
        }
    }
}

/// Node embeddings (users then items), read-only.
#[derive(Clone, Copy)]
pub struct Emb<'a> {
    /// (n_users + n_items) × width values, row-major.
    pub data: &'a [f32],
    /// User rows (first).
    pub n_users: usize,
    /// Item rows (after the users).
    pub n_items: usize,
    /// Columns of every row.
    pub width: usize,
}

impl<'a> Emb<'a> {
    pub(super) fn from_abi(e: EmbRef<'a>) -> Self {
        Emb {
            data: e.data.as_slice(),
            n_users: e.n_users,
            n_items: e.n_items,
            width: e.width,
        }
    }
    /// The ABI view, to pass on to another plugin call.
    pub fn to_abi(self) -> EmbRef<'a> {
        EmbRef {
            data: self.data.into(),
            n_users: self.n_users,
            n_items: self.n_items,
            width: self.width,
        }
    }
    /// User `u`'s row.
    pub fn user(&self, u: usize) -> &'a [f32] {
        &self.data[u * self.width..(u + 1) * self.width]
    }
    /// Item `i`'s row.
    pub fn item(&self, i: usize) -> &'a [f32] {
        let r = self.n_users + i;
        &self.data[r * self.width..(r + 1) * self.width]
    }
    /// Every user row (n_users × width).
    pub fn users(&self) -> &'a [f32] {
        &self.data[..self.n_users * self.width]
    }
    /// Every item row (n_items × width).
    pub fn items(&self) -> &'a [f32] {
        &self.data[self.n_users * self.width..]
    }
}

/// Node embeddings (users then items), writable: a forward output or a gradient buffer.
pub struct EmbBuf<'a> {
    /// (n_users + n_items) × width values, row-major.
    pub data: &'a mut [f32],
    /// User rows (first).
    pub n_users: usize,
    /// Item rows (after the users).
    pub n_items: usize,
    /// Columns of every row.
    pub width: usize,
}

impl<'a> EmbBuf<'a> {
    pub(super) fn from_abi(e: EmbMut<'a>) -> Self {
        EmbBuf {
            data: e.data.into_mut_slice(),
            n_users: e.n_users,
            n_items: e.n_items,
            width: e.width,
        }
    }
    /// The ABI view, to pass on to another plugin call.
    pub fn to_abi(&mut self) -> EmbMut<'_> {
        EmbMut {
            data: (&mut *self.data).into(),
            n_users: self.n_users,
            n_items: self.n_items,
            width: self.width,
        }
    }
    /// A read-only view of the same buffer.
    pub fn as_emb(&self) -> Emb<'_> {
        Emb {
            data: self.data,
            n_users: self.n_users,
            n_items: self.n_items,
            width: self.width,
        }
    }
    /// User `u`'s row, writable.
    pub fn user_mut(&mut self, u: usize) -> &mut [f32] {
        let w = self.width;
        &mut self.data[u * w..(u + 1) * w]
    }
    /// Item `i`'s row, writable.
    pub fn item_mut(&mut self, i: usize) -> &mut [f32] {
        let (w, r) = (self.width, self.n_users + i);
        &mut self.data[r * w..(r + 1) * w]
    }
    /// The user rows, writable.
    pub fn users_mut(&mut self) -> &mut [f32] {
        &mut self.data[..self.n_users * self.width]
    }
    /// The item rows, writable.
    pub fn items_mut(&mut self) -> &mut [f32] {
        &mut self.data[self.n_users * self.width..]
    }
}
