"""The mutants of tests/mutation_runner.py: realistic one-place edits of every engine path.

Each is ``Mutant(area, path, name, old, new)``: in ``path`` the text ``old`` (found exactly
once) becomes ``new``. The areas and the suites that must kill their mutants are in
``mutation_runner.AREAS``. A mutant names the mistake it stands for.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    area: str
    path: str
    name: str
    old: str
    new: str


def _in(area: str, path: str):  # type: ignore[no-untyped-def]
    def make(name: str, old: str, new: str) -> Mutant:
        return Mutant(area, path, name, old, new)

    return make


_python = _in("python", "backends/python/_value.py")
_kernels = _in("numba-kernels", "backends/numba/_kernels.py")
_tape = _in("numba-tape", "backends/numba/_tape.py")
_value = _in("numba-value", "backends/numba/_value.py")
_lowering = _in("numba-lowering", "backends/numba/_lowering.py")
_fails = _in("numba-replay", "backends/numba/_lowering.py")  # the failure tests: replay's alone
_replay_kernels = _in("numba-replay", "backends/numba/_replay/_kernels.py")
_replay_pipeline = _in("numba-replay", "backends/numba/_replay/__init__.py")
_replay_schedule = _in("numba-replay", "backends/numba/_replay/_schedule.py")
_replay_requires_grad = _in("numba-replay", "backends/numba/_replay/_requires_grad.py")
_replay_fusion = _in("numba-replay", "backends/numba/_replay/_fusion.py")
_replay_order_check = _in("numba-replay", "backends/numba/_replay/_order_check.py")
_replay_step = _in("numba-replay", "backends/numba/_replay/_step.py")
_replay_extract = _in("numba-replay", "backends/numba/_replay/_extract.py")
_lanes_template = _in("numba-template", "backends/numba/_replay/_template.py")
_lanes_kernels = _in("numba-template", "backends/numba/_replay/_lanes.py")
_tiles = _in("numba-template", "backends/numba/_replay/_tiles.py")
_transpose = _in("numba-template", "backends/numba/_replay/_transpose.py")
_plan = _in("numba-template", "backends/numba/_replay/_plan.py")
_lanes_drivers = _in("numba-template", "backends/numba/_replay/_kernels.py")
_lanes_order_check = _in("numba-template", "backends/numba/_replay/_order_check.py")
_lanes_layout = _in("numba-template", "backends/numba/_replay/_layout.py")
_compile = _in("spec-compile", "spec/compile.py")
_capture = _in("spec-compile", "spec/capture.py")
_tracing = _in("spec-compile", "spec/tracing.py")
_value_base = _in("spec-compile", "spec/value.py")
_optim = _in("spec-optim", "spec/optim.py")
_nn = _in("spec-nn", "spec/nn.py")
_fused_kernel = _in("numba-fused", "backends/numba/_kernels.py")
_fused = _in("numba-fused", "backends/numba/_fused.py")
_guards = _in("guards", "spec/guards.py")
_guards_nn = _in("guards", "spec/nn.py")
_guards_optim = _in("guards", "spec/optim.py")
_guards_compile = _in("guards", "spec/compile.py")
_guards_capture = _in("guards", "spec/capture.py")
_guards_tracing = _in("guards", "spec/tracing.py")
_guards_extract = _in("guards", "backends/numba/_replay/_extract.py")
_guards_fused = _in("guards", "backends/numba/_fused.py")
_losses = _in("spec-nn", "spec/losses.py")
_state = _in("spec-nn", "spec/state.py")
_jit = _in("numba-cache", "backends/numba/_jit.py")
_pipeline = _in("numba-replay", "backends/numba/_replay/_pipeline.py")
_verify = _in("numba-replay", "backends/numba/_replay/_verify.py")
_threaded = _in("numba-cache", "backends/numba/_replay/_kernels.py")

PYTHON = [
    _python(
        "add_grad_drops_second_operand", "    a._grad += grad\n    b._grad += grad\n", "    a._grad += grad\n"
    ),
    _python(
        "add_grad_assigns",
        "    a._grad += grad\n    b._grad += grad\n",
        "    a._grad = grad\n    b._grad = grad\n",
    ),
    _python(
        "mul_grad_swapped",
        "a._grad += b._data * grad\n    b._grad += a._data * grad",
        "a._grad += a._data * grad\n    b._grad += b._data * grad",
    ),
    _python("mul_grad_drops_second_operand", "    b._grad += a._data * grad\n", ""),
    _python("mul_grad_assigns", "a._grad += b._data * grad", "a._grad = b._data * grad"),
    _python(
        "pow_grad_base_exponent_off_by_one",
        "a._grad += y * ieee_pow(x, y - 1.0) * grad",
        "a._grad += y * ieee_pow(x, y) * grad",
    ),
    _python(
        "pow_grad_exponent_drops_log",
        "b._grad += node._data * _log(x) * grad",
        "b._grad += node._data * grad",
    ),
    _python("pow_const_grad_off_by_one", "c * ieee_pow(a._data, c - 1.0)", "c * ieee_pow(a._data, c - 2.0)"),
    _python("pow_const_grad_at_zero_exponent", "(0.0 if c == 0.0 else", "(1.0 if c == 0.0 else"),
    _python(
        "exp_grad_uses_input", "node._a._grad += node._data * grad", "node._a._grad += node._a._data * grad"
    ),
    _python(
        "log_grad_squared", "a._grad += 1.0 / a._data * grad", "a._grad += 1.0 / (a._data * a._data) * grad"
    ),
    _python(
        "tanh_grad_drops_factor_four",
        "a._grad += 4.0 * e / ((1.0 + e) * (1.0 + e)) * grad",
        "a._grad += e / ((1.0 + e) * (1.0 + e)) * grad",
    ),
    _python(
        "relu_grad_at_zero_is_one",
        "(1.0 if node._data > 0.0 else 0.0)",
        "(1.0 if node._a._data >= 0.0 else 0.0)",
    ),
    _python("sigmoid_grad_ignores_sign", "e = _exp(-abs(a._data))", "e = _exp(-a._data)"),
    _python(
        "backward_keeps_stale_interior_grads",
        "        for node in interior:\n            node._grad = 0.0\n",
        "",
    ),
    _python(
        "backward_in_creation_order",
        "interior.sort(key=_creation_order, reverse=True)",
        "interior.sort(key=_creation_order)",
    ),
    _python(
        "backward_resets_leaves",
        "        self._grad = 1.0\n",
        "        for node in _graph(self):\n            node._grad = 0.0\n        self._grad = 1.0\n",
    ),
    _python(
        "zero_grad_skips_leaves",
        "        for node in _graph(self):\n            node._grad = 0.0\n",
        "        for node in _graph(self):\n            if node._backward is not None:\n                node._grad = 0.0\n",
    ),
    _python(
        "graph_walk_skips_second_operand",
        "if b is not None and b not in seen:",
        "if b is not None and b not in seen and False:",
    ),
    _python(
        "add_overflow_unchecked",
        "        if not -_INF < data < _INF:\n            raise overflow_error(OpCode.ADD, (self._data, other._data))\n",
        "",
    ),
    _python(
        "nan_accepted_at_construction", "self._data = as_finite_float(data)", "self._data = as_float(data)"
    ),
    _python("sigmoid_negative_branch", "    return e / (1.0 + e)", "    return 1.0 / (1.0 + e)"),
    _python(
        "max_tie_gives_each_the_whole_grad",
        "(1.0 if x > y else 0.0 if y > x else 0.5) * grad",
        "(1.0 if x >= y else 0.0) * grad",
    ),
    _python(
        "max_forward_keeps_second_on_tie", "    return y if y > x else x\n", "    return y if y >= x else x\n"
    ),
    _python(
        "div_grad_of_divisor_drops_sign",
        "    b._grad += -node._data / y * grad\n",
        "    b._grad += node._data / y * grad\n",
    ),
    _python("domain_unchecked", "        check_domain(code, inputs, constant)\n", ""),
    _python(
        "overflow_raised_as_python_error",
        "        except OverflowError:  # Python's math raises where float64 gives an infinity\n            data = _INF\n",
        "        except ZeroDivisionError:\n            data = _INF\n",
    ),
]

LOWERING = [  # shared by the eager Value, the tape's backward and the replay: both must catch each
    _lowering(
        "pow_exponent_partial_drops_out",
        "return y * x ** (y - 1.0), out * math.log(x)",
        "return y * x ** (y - 1.0), math.log(x)",
    ),
    _lowering("mul_partials_swapped", "    return y, x\n", "    return x, y\n"),
    _lowering("log_partial_squared", "return 1.0 / x, 0.0", "return 1.0 / (x * x), 0.0"),
    _lowering(
        "relu_partial_from_input_ge",
        "return (1.0 if out > 0.0 else 0.0), 0.0",
        "return (1.0 if x >= 0.0 else 0.0), 0.0",
    ),
    _lowering(
        "tanh_partial_from_output",
        "e = math.exp(-2.0 * abs(x))\n    return 4.0 * e / ((1.0 + e) * (1.0 + e)), 0.0",
        "return 1.0 - out * out, 0.0",
    ),
    _lowering(
        "tanh_partial_drops_factor_four",
        "return 4.0 * e / ((1.0 + e) * (1.0 + e)), 0.0",
        "return e / ((1.0 + e) * (1.0 + e)), 0.0",
    ),
    _lowering(
        "sigmoid_partial_ignores_sign",
        "e = math.exp(-abs(x))\n    return e /",
        "e = math.exp(-x)\n    return e /",
    ),
    _lowering(
        "relu_of_negative_zero_is_zero",
        "return 0.0 if x < 0.0 else x  # micrograd",
        "return 0.0 if x <= 0.0 else x  # micrograd",
    ),
    _lowering(
        "sigmoid_negative_branch_inverted", "    return e / (1.0 + e)\n", "    return 1.0 / (1.0 + e)\n"
    ),
    _lowering("div_as_reciprocal_product", "    return x / y\n", "    return x * (1.0 / y)\n"),
    _lowering(
        "div_partial_of_divisor_from_inputs", "return 1.0 / y, -out / y", "return 1.0 / y, -x / (y * y)"
    ),
    _lowering("max_tie_goes_to_the_first", "    return 0.5, 0.5\n", "    return 1.0, 0.0\n"),
    _lowering(
        "max_partials_swapped",
        "    if x > y:\n        return 1.0, 0.0\n",
        "    if x > y:\n        return 0.0, 1.0\n",
    ),
    _lowering("pow_const_partial_off_by_one", "c * x ** (c - 1.0)), 0.0", "c * x ** (c - 2.0)), 0.0"),
]

KERNELS = [
    _kernels(
        "backward_keeps_stale_interior_grad",
        "                if op[j] != LEAF:\n                    grad[j] = 0.0\n",
        "",
    ),
    _kernels("backward_assigns_second_operand", "grad[k] += dk * g", "grad[k] = dk * g"),
    _kernels(
        "backward_stops_one_node_early",
        '        if pending == 0:\n            break\n\n\n@jit("void(float64[::1], int8',
        '        if pending <= 1:\n            break\n\n\n@jit("void(float64[::1], int8',
    ),
    _kernels(
        "zero_grad_kernel_skips_leaves",
        "        grad[i] = 0.0\n        if op[i] != LEAF:",
        "        if op[i] != LEAF:\n            grad[i] = 0.0",
    ),
    _kernels(
        "renumber_forgets_second_operand", "                keep[b[i]] = True\n", "                pass\n"
    ),
    _kernels(
        "compact_loses_node_zero_as_second_operand",
        "b[j] = new_index[b[i]] if b[i] >= 0 else -1",
        "b[j] = new_index[b[i]] if b[i] > 0 else -1",
    ),
    _kernels("compact_zeroes_grads", "grad[j] = grad[i] if i < n_grad else 0.0", "grad[j] = 0.0"),
]

TAPE = [
    _tape(
        "sweep_frees_nothing_until_compaction",
        "                if getrefcount(handle) > dead:\n                    survivors",
        "                if getrefcount(handle) >= dead:\n                    survivors",
    ),
    _tape(
        "compaction_keeps_one_dead_node",
        "        self.truncate(kept)\n",
        "        self.truncate(kept + 1)\n",
    ),
    _tape(
        "compaction_forgets_to_renumber_handles",
        "                handle._i = node\n",
        "                pass\n",
    ),
    _tape("handle_made_anew_for_live_node", "        if found is not None:\n            return found\n", ""),
    _tape("holding_does_not_stop_compaction", "        if self.holding:", "        if False:"),
    _tape(
        "trace_dropped_under_live_handles",
        "        if any(handle._i >= start for handle in handles):",
        "        if False:",
    ),
]

VALUE = [
    _value(
        "add_overflow_unchecked_between_values",
        "        out = _add(x, y, 0.0)\n        if not -_INF < out < _INF:\n            raise overflow_error(_ADD, (x, y))\n        # _push",
        "        out = _add(x, y, 0.0)\n        # _push",
    ),
    _value("unary_domain_unchecked", "            check_domain(code, (x,), constant)\n", ""),
    _value(
        "number_operand_leaf_holds_the_output",
        "return _push_with_leaf(t, _checked(code, forward, x, y, constant), kernel_code, self, y)",
        "return _push_with_leaf(t, _checked(code, forward, x, y, constant), kernel_code, self, x)",
    ),
    _value(
        "data_assignment_unchecked",
        "self._t.data[self._i] = as_finite_float(value)",
        "self._t.data[self._i] = float(value)",
    ),
    _value(
        "value_ops_skip_thread_check",
        "        # _push(t, out, _ADD, self, other, 0.0), written out: the hottest path of all.\n        if t is not _threads.tape:\n            raise wrong_thread_error(t)\n",
        "        # _push(t, out, _ADD, self, other, 0.0), written out: the hottest path of all.\n",
    ),
]

REPLAY = [
    _fails("log_domain_lets_zero_through", "    return not x > 0.0\n", "    return x < 0.0\n"),
    _fails(
        "exp_overflow_unchecked",
        "    if code == EXP:\n        return _overflows(x, y, c, out)",
        "    if code == EXP:\n        return False",
    ),
    _fails(
        "pow_const_domain_unchecked",
        "    if x == 0.0 and (c < 0.0 or 0.0 < c < 1.0):\n        return True\n",
        "",
    ),
    _replay_kernels(
        "primitive_failures_ignored",
        "            if op_fails(kind, x, y, c, out):\n                return v\n",
        "",
    ),
    _replay_kernels(
        "primitive_grad_skips_second_operand",
        "            gv = grad[v]\n            grad[i] += di * gv\n            grad[j] += dj * gv\n",
        "            gv = grad[v]\n            grad[i] += di * gv\n",
    ),
    _fails("lane_failure_not_looked_for", "        failed |= fails_of(xv, yv, c, result)\n", ""),
    _fails(
        "lane_pushes_overwrite_the_grad",
        "            grad[ix + s] += di * grad[o + s]\n",
        "            grad[ix + s] = di * grad[o + s]\n",
    ),
    _fails(
        "lane_relu_fails_like_log",
        "        return _forward_lanes(relu_forward, _overflows, val, x, sx, y, sy, c, out, s0, s1)",
        "        return _forward_lanes(relu_forward, log_fails, val, x, sx, y, sy, c, out, s0, s1)",
    ),
    _replay_pipeline(
        "unknown_op_codes_accepted", "    if unknown:\n        names", "    if False:\n        names"
    ),
    _replay_schedule(
        "dot_grouping_ignores_mode",
        "keys = [height, width, kind, n_terms, mode, needs]",
        "keys = [height, width, kind, n_terms, needs]",
    ),
    _replay_kernels(
        "overflow_check_skips_fourth_node",
        "-_INF < s2 < _INF and -_INF < s3 < _INF)",
        "-_INF < s2 < _INF)",
    ),
    _replay_kernels(
        "second_lane_reads_the_third",
        "s1 = s1 + val[terms[t1 + k, 0]] * val[terms[t1 + k, 1]]",
        "s1 = s1 + val[terms[t2 + k, 0]] * val[terms[t1 + k, 1]]",
    ),
    _replay_requires_grad(
        "needs_ignore_second_operand", "            needs[v] = needs[v] or needs[b[v]]\n", ""
    ),
    _replay_fusion(
        "sum_absorbs_partial_sum_on_the_right",
        "if op[y] == MUL and count[y] == 1",
        "if (op[y] == MUL or op[y] == ADD) and count[y] == 1",
    ),
    _replay_order_check(
        "order_check_ignores_order",
        "    if done[slot] or pusher > last[slot]:",
        "    if done[slot]:",
    ),
    _replay_kernels(
        "momentum_update_scales_grad",
        "velocity = momentum * state[0, i] + g",
        "velocity = momentum * state[0, i] + lr * g",
    ),
    _replay_kernels(
        "adam_state_v_not_kept", "            state[1, i] = scratch[2, i]\n", "            pass\n"
    ),
    _replay_kernels(
        "last_sample_not_written",
        "    for s in range(n):\n        for j in range(columns):\n",
        "    for s in range(n - 1):\n        for j in range(columns):\n",
    ),
    _replay_kernels(
        "first_column_not_written",
        "        for j in range(columns):\n            val[first",
        "        for j in range(1, columns):\n            val[first",
    ),
    _replay_step(
        "parameter_nodes_not_renumbered",
        "if tape.compactions != self._compactions:",
        "if self._compactions < 0:",
    ),
    _replay_step(
        "any_thread_may_call", "        if current_tape() is not self._tape:\n", "        if False:\n"
    ),
    _replay_extract(
        "outside_values_not_reported",
        "outside=older_nodes[~np.isin(older_nodes, given)]",
        "outside=older_nodes[:0]",
    ),
]

TEMPLATE = [
    _lanes_template(
        "constants_matched_whatever_their_value",
        "if x != y and not (is_constant[x] and is_constant[y] and bits[x] == bits[y]):",
        "if x != y and not (is_constant[x] and is_constant[y]):",
    ),
    _lanes_template(
        "input_columns_not_compared",
        "                    if column[x] != column[y]:\n",
        "                    if False:\n",
    ),
    _lanes_template(
        "private_shared_nodes_not_claimed",
        "        if s == SHARED and readers[f] >= 0:",
        "        if False:",
    ),
    _lanes_template(
        "needs_not_compared", "        if needs[tops[f]] != needs[tops[r]]:\n            return rank, 0\n", ""
    ),
    _lanes_kernels(
        "four_sums_first_sample_first",
        "    for s in range(np.uint64(lanes), 0, -1):\n",
        "    for s in range(np.uint64(1), np.uint64(lanes) + np.uint64(1)):\n",
    ),
    _lanes_kernels(
        "shared_sum_first_sample_first",
        "            for s in range(hi, lo, -1):\n                acc = acc + k * grad[out + s - 1]",
        "            for s in range(lo + np.uint64(1), hi + np.uint64(1)):\n                acc = acc + k * grad[out + s - 1]",
    ),
    _lanes_kernels(
        "lane_forward_skips_overflow_check",
        "        bad |= not -_INF < val[s] < _INF\n",
        "        pass\n",
    ),
    _lanes_drivers(
        "columns_written_row_by_row",
        "            val[first + j * n + s] = rows[s * columns + j]",
        "            val[first + s * columns + j] = rows[s * columns + j]",
    ),
    _lanes_kernels(
        "sums_across_units_two_samples_swapped",
        "high = (sums[i] + x3 * rows[3 * count + i]) + x2 * rows[2 * count + i]",
        "high = (sums[i] + x2 * rows[2 * count + i]) + x3 * rows[3 * count + i]",
    ),
    _lanes_kernels(
        "sums_across_units_whether_or_not_distinct",
        "    if distinct and is_sum and units - first_unit > 1:",
        "    if is_sum and units - first_unit > 1:",
    ),
    _lanes_kernels(
        "units_push_alike_whatever_their_factors",
        "            if (into_a and y != c) or (into_c and x != a):\n                return 0\n",
        "",
    ),
    _transpose(
        "transpose_block_skips_its_last_round",
        "        for size in (1, 2, 4):",
        "        for size in (1, 2):",
    ),
    _transpose(
        "transpose_drops_the_first_sample_of_the_tail",
        "        done = s if i < whole else 0",
        "        done = s + 1 if i < whole else 0",
    ),
    _transpose(
        "transpose_drops_the_first_row_after_the_blocks",
        "        done = s if i < whole else 0",
        "        done = s if i <= whole else 0",
    ),
    _lanes_kernels(
        "aligned_pushes_into_places_that_need_no_grad",
        "        if _pushes_per_sample(terms, needs, k):\n            places[rows]",
        "        if _lane_and_weight(terms, k)[0] >= 0:\n            places[rows]",
    ),
    _plan(
        "all_units_taken_as_aligned",
        "        if not _units_aligned(terms, t, n, count):\n",
        "        if False:\n",
    ),
    _plan(
        "four_units_taken_as_aligned",
        "            count = 4 if count >= 4 and _units_aligned(terms, t, n, 4) else 1",
        "            count = 4 if count >= 4 else 1",
    ),
    _plan(
        "four_units_fold_to_their_last_term",
        "            plan[t, FOLD_START], plan[t, FOLD_END] = start, end",
        "            plan[t, FOLD_START], plan[t, FOLD_END] = start, n",
    ),
    _plan(
        "shared_pass_where_a_group_pushes_into_per_sample_slots",
        "        plan[t, SHARED] = np.any((places & LANE == 0) & needs[places & SLOT])",
        "        plan[t, SHARED] = np.any((places & LANE != 0) & needs[places & SLOT])",
    ),
    _lanes_drivers(
        "shared_pass_flag_read_off_the_groups_first_row",
        "                if groups[h, NEEDS] == 0 or plan[groups[h, TERM], SHARED] == 0:",
        "                if groups[h, NEEDS] == 0 or plan[groups[h, TERM] + 1, SHARED] == 0:",
    ),
    _plan(
        "plan_pushes_keyed_one_unit_off",
        "        plan[t, PUSHING] = count",
        "        plan[t - n, PUSHING] = count",
    ),
    _lanes_kernels(
        "aligned_pushes_last_unit_first",
        "    units = out_slot + s0 - np.arange(count) * width",
        "    units = out_slot + s0 - (count - 1 - np.arange(count)) * width",
    ),
    _lanes_kernels(
        "four_units_fold_adds_to_the_first_term",
        "                start = max(start, 1)  # the first term is stored",
        "                start = max(start, 0)  # the first term is stored",
    ),
    _lanes_kernels(
        "four_units_fold_weights_of_the_first_unit_for_all",
        "            weights[u * steps + j] = val[_lane_and_weight(terms, t + u * n + start + j)[1]]",
        "            weights[u * steps + j] = val[_lane_and_weight(terms, t + start + j)[1]]",
    ),
    _lanes_kernels(
        "sums_over_samples_first_sample_first",
        "    samples = (width - 1 - np.arange(width)) * run",
        "    samples = np.arange(width) * run",
    ),
    _tiles(
        "tile_fused_multiply_add",
        "                    builder.store(builder.fadd(builder.load(sums[r][v]), product), sums[r][v])",
        "                    fused = cgutils.get_or_insert_function(\n"
        '                        builder.module, ir.FunctionType(vector, [vector] * 3), f"llvm.fma.v{lane_count}f64"\n'
        "                    )\n"
        "                    builder.store(builder.call(fused, [factors[v], weight, builder.load(sums[r][v])]), sums[r][v])",
    ),
    _tiles(
        "tile_reads_b_without_its_step",
        "            b_offset = builder.mul(loop.index, b_stride)",
        "            b_offset = loop.index",
    ),
    _tiles(
        "tile_drops_the_last_single_lane",
        "    while lane < lanes:\n        _tile(",
        "    while lane + 1 < lanes:\n        _tile(",
    ),
    _tiles(
        "tile_skips_the_rows_after_the_whole_tiles",
        "    while row < c_rows.shape[0]:\n",
        "    while row + 1 < c_rows.shape[0]:\n",
    ),
    _plan(
        "a_place_pushed_twice_still_aligned",
        "            if place <= last:\n                return False\n",
        "",
    ),
    _lanes_kernels(
        "four_products_folded_right_to_left",
        "            val[out + s] = ((sum_ + val[x1 + s] * k1) + val[x2 + s] * k2) + val[x3 + s] * k3",
        "            val[out + s] = sum_ + ((val[x1 + s] * k1 + val[x2 + s] * k2) + val[x3 + s] * k3)",
    ),
    _plan(
        "four_units_fold_their_own_slots_too",
        "    if not _four_units_read_others(terms, t, n, out, width):\n        return 0, 0\n",
        "",
    ),
    _plan(
        "two_per_sample_factors_read_alike",
        " or terms[t + u * n + j, 1 - side] & LANE:",
        ":",
    ),
    _lanes_kernels(
        "transposed_factors_reused_whatever_they_are",
        "        if terms[first + i, 1] != terms[other + i, 1]:\n            return False\n",
        "        pass\n",
    ),
    _lanes_kernels(
        "runs_of_weights_need_not_be_consecutive",
        " or not needs[x & SLOT] or x != a - run:",
        " or not needs[x & SLOT]:",
    ),
    _lanes_kernels(
        "per_sample_pass_pushes_into_shared_slots_too",
        "                if a & LANE and needs[a & SLOT]:\n                    lanes_push(val, grad, a, c, out, s0, s1)",
        "                if needs[a & SLOT]:\n                    lanes_push(val, grad, a, c, out, s0, s1)",
    ),
    _lanes_kernels(
        "four_units_at_once_whether_or_not_distinct",
        "    if distinct and is_sum and n < RUN:",
        "    if is_sum and n < RUN:",
    ),
    _lanes_drivers(
        "blocks_of_samples_overlap",
        "    return first, min(first + size, count)",
        "    return first, min(first + size + 1, count)",
    ),
    _lanes_drivers(
        "a_threads_failure_is_dropped",
        "    return failed.max()",
        "    return -1",
    ),
    _lanes_layout(
        "a_slot_two_units_push_into_still_distinct",
        "                    if pushed[x]:\n                        distinct[g] = 0\n",
        "",
    ),
    _lanes_order_check(
        "lanes_may_read_one_samples_slot_of_their_segment",
        "                    if width > 1 and not x & LANE and x >= segment_lo:\n                        return False\n",
        "",
    ),
    _lanes_order_check(
        "lane_pushes_checked_in_sample_zero_only",
        "if not _in_order(base + lane * s, pusher[pusher_at[k] + s], last, done):",
        "if not _in_order(base, pusher[pusher_at[k] + s], last, done):",
    ),
    _lanes_layout(
        "inputs_laid_out_row_by_row",
        "    placed = captured.inputs.T.reshape(-1)  # column by column\n",
        "    placed = captured.inputs.reshape(-1)\n",
    ),
]

COMPILE = [
    _compile(
        "optimizer_state_not_read_back",
        "            self.state[row] = values\n",
        "            pass\n",
    ),
    _compile(
        "adam_v_not_synced",
        "for row, values in enumerate(lists.values()):",
        "for row, values in enumerate(list(lists.values())[:1]):",
    ),
    _compile(
        "adam_bias_correction_off_by_one",
        "        t = optimizer.steps + 1\n",
        "        t = optimizer.steps + 2\n",
    ),
    _compile("replay_skips_the_thread_check", "        self.check_caller()\n", ""),
    _compile(
        "sgd_velocity_not_the_grads",
        '            optimizer.leave_state("velocity", grads.copy())\n',
        "            pass\n",
    ),
    _compile(
        "sgd_velocity_a_view_of_the_next_steps_grads",
        '            optimizer.leave_state("velocity", grads.copy())\n',
        '            optimizer.leave_state("velocity", grads)\n',
    ),
    _optim(
        "left_state_never_made_a_list",
        "        if isinstance(values, np.ndarray):\n            values = optimizer.__dict__[self.name] = values.tolist()\n",
        "",
    ),
    _compile(
        "eager_step_passes_floats",
        "        rows, labels = placeholders(self._value_type, X, T)\n",
        "        rows, labels = X.tolist(), T.tolist()\n",
    ),
    _compile(
        "eager_step_failure_keeps_new_grads", "                p.grad = grad\n", "                pass\n"
    ),
    _capture("outside_values_allowed", "    if len(graph.outside):", "    if False:"),
    _capture("targets_are_numbers", "[value_type(t) for t in T.tolist()]", "T.tolist()"),
    _capture(
        "parameters_not_traced",
        "with tracing(value_type, [*params, *(v for row in rows for v in row), *labels]) as trace:",
        "with tracing(value_type, [*(v for row in rows for v in row), *labels]) as trace:",
    ),
    _capture("non_finite_data_accepted", "        if not np.isfinite(array).all():", "        if False:"),
    _tracing(
        "computed_values_not_traced",
        "            for child in node.children:",
        "            for child in ():",
    ),
    _value_base(
        "bool_of_traced_value_allowed",
        '        refuse_if_traced(self, "bool() (an if or while on a Value)")\n',
        "",
    ),
    _value_base(
        "comparison_of_traced_value_allowed",
        '        refuse_if_traced(self, f"comparing (a {symbol} b)")\n        if isinstance',
        "        if isinstance",
    ),
]

OPTIM = [
    _optim(
        "momentum_dampens_grad",
        "self.momentum * v + p.grad",
        "self.momentum * v + (1.0 - self.momentum) * p.grad",
    ),
    _optim(
        "adam_eps_inside_sqrt", "math.sqrt(vi / v_scale) + self.eps", "math.sqrt(vi / v_scale + self.eps)"
    ),
    _optim("adam_bias_correction_from_zero", "        t = self.steps + 1\n", "        t = self.steps\n"),
    _optim(
        "zero_grad_skips_last_parameter",
        "        for p in self.params:\n            p.grad = 0.0",
        "        for p in self.params[:-1]:\n            p.grad = 0.0",
    ),
    _optim("non_finite_update_assigned", "            if not math.isfinite(value):", "            if False:"),
    _optim(
        "linear_decay_rounds_differently",
        "return lambda k: start - drop * k / steps",
        "return lambda k: start - drop * (k / steps)",
    ),
]

NN = [
    _nn(
        "bias_summed_last",
        "act = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)",
        "act = sum(wi * xi for wi, xi in zip(self.w, x, strict=True)) + self.b",
    ),
    _nn(
        "weights_drawn_in_reverse",
        "return [rng.uniform(-1, 1) for _ in range(nin)]",
        "return [rng.uniform(-1, 1) for _ in range(nin)][::-1]",
    ),
    _nn(
        "output_layer_gets_hidden_activation",
        "activation=output_activation if i == last else activation",
        "activation=activation",
    ),
    _nn("bias_listed_first", "return self.w + [self.b]", "return [self.b] + self.w"),
]

FUSED = [
    _fused_kernel(
        "product_operands_swapped",
        "n = _write(data, op, a, b, const, n, MUL, w, x, product)",
        "n = _write(data, op, a, b, const, n, MUL, x, w, product)",
    ),
    _fused_kernel(
        "sum_operands_swapped",
        "n = _write(data, op, a, b, const, n, ADD, total, n - 1, out)",
        "n = _write(data, op, a, b, const, n, ADD, n - 1, total, out)",
    ),
    _fused_kernel("number_leaf_takes_first_number", "data[n] = numbers[i]", "data[n] = numbers[0]"),
    _fused_kernel("activation_skipped", "        if code != LINEAR:\n", "        if False:\n"),
    _fused_kernel("sum_overflow_unchecked", "if add_fails(data[total], product, 0.0, out):", "if False:"),
    _fused_kernel("later_layers_take_first_biases", "biases[b0 : b0 + nout],", "biases[0:nout],"),
    _fused_kernel("later_layers_take_first_weights", "        w0 += nout * nin\n", ""),
    _fused(
        "activation_read_off_the_next_row",
        "row.method: LOWERINGS[code].code",
        "row.method: LOWERINGS[code].code + 1",
    ),
    _fused("failed_call_leaves_nodes", "        t.truncate(start)\n", ""),
    _fused(
        "plan_kept_across_compaction",
        "    if entry is None or entry.compactions != t.compactions or entry.neurons != neurons:",
        "    if entry is None or entry.neurons != neurons:",
    ),
    _fused(
        "plan_kept_across_neuron_edits",
        "    if entry is None or entry.compactions != t.compactions or entry.neurons != neurons:",
        "    if entry is None or entry.compactions != t.compactions:",
    ),
    _fused(
        "plan_takes_a_number_bias",
        "            if p.__class__ is not Value or p._t is not t:",
        "            if (p.__class__ is not Value and p is not b) or p._t is not t:",
    ),
    _fused(
        "plan_takes_another_tapes_bias",
        "            if p.__class__ is not Value or p._t is not t:",
        "            if p.__class__ is not Value or (p._t is not t and p is not b):",
    ),
    _fused(
        "plan_ignores_the_weight_count", "        if n_in != nin or len(w) != nin:", "        if n_in != nin:"
    ),
    _fused(
        "linear_neurons_counted_as_activated",
        "nodes=len(neurons) * 2 * nin + sum(code != LINEAR for code in codes),",
        "nodes=len(neurons) * 2 * nin + len(codes),",
    ),
    _fused(
        "plan_snapshot_shares_weight_lists",
        "snapshot = [(list(w), *rest) for w, *rest in neurons]",
        "snapshot = neurons",
    ),
    _fused(
        "mlp_plan_kept_across_layer_plans",
        "        or list(map(id, entry.layer_plans)) != list(map(id, layer_plans))\n",
        "",
    ),
    _fused(
        "overridden_neuron_call_fused",
        "        and all(neuron_cls.__call__ is _NEURON_CALL for *_, neuron_cls in neurons)\n",
        "",
    ),
    _fused(
        "housekeeping_renumbering_ignored", "        if t.compactions != compactions:", "        if False:"
    ),
    _fused(
        "foreign_tape_inputs_fused", "        if set(map(_tape_of, x)) != {t}:\n            return None\n", ""
    ),
]

GUARDS = [
    _guards("guard_always_holds", "        if seen == self._seen and self._watched:", "        if True:"),
    _guards(
        "unwatched_model_trusted_to_the_counter",
        "        if seen == self._seen and self._watched:",
        "        if seen == self._seen:",
    ),
    _guards(
        "class_attributes_not_in_the_snapshot",
        '                self._put(f"{cls.__qualname__}.{name}", attribute)\n',
        "                pass\n",
    ),
    _guards(
        "class_patch_not_noted",
        "    def __setattr__(cls, name: str, value: Any) -> None:\n        super().__setattr__(name, value)\n        note_change()\n",
        "    def __setattr__(cls, name: str, value: Any) -> None:\n        super().__setattr__(name, value)\n",
    ),
    _guards(
        "list_item_assignment_not_noted",
        "list(map(tracked, value))\n        )\n        note_change()\n",
        "list(map(tracked, value))\n        )\n",
    ),
    _guards(
        "list_reversal_not_noted",
        "        super().reverse()\n        note_change()\n",
        "        super().reverse()\n",
    ),
    _guards_nn(
        "module_attribute_not_noted",
        "        object.__setattr__(self, name, tracked(value))\n        note_change()\n",
        "        object.__setattr__(self, name, tracked(value))\n",
    ),
    _guards_optim(
        "optimizer_params_assignment_not_noted",
        '        if name == "params":\n            note_change()\n',
        "",
    ),
    _guards_optim(
        "learning_rate_not_converted",
        '    return value if callable(value) else _positive(value, "learning rate")',
        "    return value",
    ),
    _guards_optim(
        "state_entries_taken_by_numpy",
        "            row = _floats(values, what)\n",
        "            row = np.asarray(values, dtype=np.float64)\n",
    ),
    _guards_optim("adam_v_sign_unchecked", "        if (v < 0.0).any():\n", "        if False:\n"),
    _guards_compile(
        "eager_step_restores_grads_only_after_its_own_errors",
        "        except BaseException:  # whatever was raised",
        "        except GradspecError:  # whatever was raised",
    ),
    _guards_compile(
        "replay_never_recaptures",
        "        changed = self._guard.changed()\n        if changed is not None:\n            self._capture(X, T)",
        "        changed = None\n        if changed is not None:\n            self._capture(X, T)",
    ),
    _guards_capture("caught_failures_allowed", "    if trace.failures:\n", "    if False:\n"),
    _guards_tracing(
        "op_failures_not_recorded",
        "    for trace in tuple(_active):\n        trace.failures.append",
        "    for trace in ():\n        trace.failures.append",
    ),
    _guards_tracing(
        "helper_threads_read_freely",
        "    if _local.suspended:\n",
        "    if _local.suspended or threading.current_thread() is not threading.main_thread():\n",
    ),
    _guards_extract(
        "values_computed_before_capture_recomputed",
        "    older_nodes = np.arange(k)\n",
        "    older_nodes = np.flatnonzero(g_op[:k] == LEAF)\n",
    ),
    _guards_fused("fused_plan_held_across_compaction", " and entry.compactions == t.compactions", ""),
    _guards_fused(
        "fused_call_ignores_value_patches",
        "def _value_methods_intact() -> bool:\n",
        "def _value_methods_intact() -> bool:\n    return True\n",
    ),
    _guards_fused(
        "fused_call_compares_with_the_patched_layer",
        "        cls.generic_outputs is _LAYER_GENERIC\n",
        "        cls.generic_outputs is Layer.generic_outputs\n",
    ),
    _guards_fused(
        "fused_call_compares_with_the_patched_mlp",
        "    return cls.generic_outputs is _MLP_GENERIC and all(",
        "    return cls.generic_outputs is MLP.generic_outputs and all(",
    ),
    _guards_fused(
        "fused_call_needs_hashable_modules",
        "    try:\n        return True, t.plans.get(module)\n    except TypeError:\n        return False, None\n",
        "    return True, t.plans.get(module)\n",
    ),
]

# decisions taken once, that near-template programs and small contract tests reach
DECISIONS = [
    _lanes_template(
        "template_ignores_exponent_constants",
        " or n_terms[f] != n_terms[r] or fconst[f] != fconst[r]:",
        " or n_terms[f] != n_terms[r]:",
    ),
    _lanes_template(
        "template_ignores_the_kind",
        "if kind[f] != kind[r] or n_terms[f]",
        "if n_terms[f]",
    ),
    _lanes_template(
        "template_reads_other_samples_nodes",
        "                elif sample[x] != s or sample[y] != 0:\n",
        "                elif sample[x] < 0 or sample[y] < 0:\n",
    ),
    _lanes_template(
        "template_ignores_which_node_of_the_sample",
        "elif rank_of_node[x] != rank_of_node[y] or rank_of_node[x] < 0:",
        "elif rank_of_node[x] < 0:",
    ),
    _plan(
        "shared_pushes_read_off_the_first_unit",
        "places = terms[t : t + (hi - lo) // width * n]",
        "places = terms[t : t + n]",
    ),
    _plan(
        "four_unit_fold_skips_the_fourth_unit", "    for u in range(1, 4):\n", "    for u in range(1, 3):\n"
    ),
    _plan(
        "aligned_pushes_check_two_units",
        "        for i in range(1, count):\n",
        "        for i in range(1, min(count, 2)):\n",
    ),
    _losses(
        "composite_sums_right_to_left",
        "    return reduce(operator.add, terms)\n",
        "    return reduce(lambda a, b: b + a, terms)\n",
    ),
    _state(
        "orphans_of_other_users_removed",
        '        if hasattr(os, "getuid") and info.st_uid != os.getuid():\n            return False\n',
        "",
    ),
    _tape(
        "compaction_waits_for_a_sweep",
        "            self.compact()\n        self.limit = min(len(self.data) + SWEEP_INTERVAL, self.compact_at)",
        "            self.compact()\n        self.limit = len(self.data) + SWEEP_INTERVAL",
    ),
    _replay_step(
        "threaded_step_keeps_its_thread_count",
        "                numba.set_num_threads(outer_threads)\n",
        "                pass\n",
    ),
]

#: compiled at first use, threaded only on threads, and the cache's per-module stamps
CACHE = [
    _jit(
        "stamp_follows_direct_imports_only",
        "            pending.extend(_imported_modules(root, module, packages) - seen)\n",
        "            if module == path.resolve():\n                pending.extend(_imported_modules(root, module, packages) - seen)\n",
    ),
    _jit(
        "stamp_reads_the_package_for_its_submodule",
        '                f"{module}.{name}" if _module_file(root, f"{module}.{name}") else module for name in imported\n',
        "                module for name in imported\n",
    ),
    _jit("first_use_compiles_other_signatures", "                self.disable_compile()\n", ""),
    _threaded("one_thread_step_runs_the_threaded_branches", "THREADED = False\n", "THREADED = True\n"),
    _threaded(
        "threaded_step_runs_on_one_thread",
        "    kernel = run if threads == 1 else run_threaded()\n",
        "    kernel = run\n",
    ),
]

#: the pipeline as the list build_program runs, its fallbacks, and the verifier
PIPELINE = [
    _pipeline(
        "switched_off_pass_runs_anyway",
        "        switched_off = step.name in state.off and step.off is not None\n",
        "        switched_off = False\n",
    ),
    _replay_pipeline(
        "fallback_skipped_where_it_differs_at_the_declining_pass",
        "        if any(all(position[n] > stop for n in state.off ^ before) for before, stop in tried):\n",
        "        if any(all(position[n] >= stop for n in state.off ^ before) for before, stop in tried):\n",
    ),
    _verify(
        "verifier_lets_a_node_read_ahead",
        "        before = np.where(is_lane | (row_width == 1), slot < owner, slot < segment_start[group_of])\n",
        "        before = np.where(is_lane | (row_width == 1), slot <= owner, slot < segment_start[group_of])\n",
    ),
]

MUTANTS = [
    *PYTHON,
    *LOWERING,
    *KERNELS,
    *TAPE,
    *VALUE,
    *REPLAY,
    *TEMPLATE,
    *COMPILE,
    *OPTIM,
    *NN,
    *FUSED,
    *GUARDS,
    *DECISIONS,
    *CACHE,
    *PIPELINE,
]
