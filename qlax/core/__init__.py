"""The bottom layer: errors and short texts of values, the dynamic settings, plain records,
files written whole, the cache of built programs, and JAX's devices. It imports no other qlax
package."""
