"""Models honouring MapAnything's contract: tiny, oracle, mapanything, and the frozen teacher."""
