/** Reverse-mode autodiff over the graph builder's op set: appends adjoint nodes to a graph. */
export { AutodiffError, addGradients } from "./differentiate.ts";
