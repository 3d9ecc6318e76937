/**
 * The error a view expression that does not parse raises: where the problem is, and what it is.
 *
 * @module
 */

/**
 * A select, where or filter expression that cannot be compiled. `position` is the 0-based offset
 * in `expression` where the problem was found (the length of the expression when it ended too
 * early), so a caller can point at it.
 *
 * @example
 * ```ts
 * import { ViewExpressionError } from "./expression_error.ts";
 * const error = new ViewExpressionError("name ==", 7, "expected a value, found the end");
 * console.assert(error.position === 7);
 * console.assert(error.message === "expected a value, found the end at position 7");
 * ```
 */
export class ViewExpressionError extends Error {
  /** Where the problem is: a 0-based offset into {@linkcode ViewExpressionError.expression}. */
  readonly position: number;
  /** The expression as given. */
  readonly expression: string;
  /** What is wrong, without the position. */
  readonly problem: string;

  /**
   * Creates the error.
   *
   * @param expression The expression as given.
   * @param position The 0-based offset of the problem.
   * @param problem What is wrong, in sentence case without a trailing period.
   */
  constructor(expression: string, position: number, problem: string) {
    super(`${problem} at position ${position}`);
    this.name = "ViewExpressionError";
    this.expression = expression;
    this.position = position;
    this.problem = problem;
  }

  /**
   * The expression with a caret under the problem, two lines, for a terminal.
   *
   * @returns The expression, a line break, and spaces up to a `^`.
   */
  pointer(): string {
    return `  ${this.expression}\n  ${" ".repeat(this.position)}^`;
  }
}
