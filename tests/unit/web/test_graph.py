"""The workflow graph's layout: columns by position, jumps as arcs, handlers apart."""

from __future__ import annotations

from cerebelum_operator.model import compile_workflow
from cerebelum_operator.web.graph import layout, layout_reached

SPEC = {
    "timeline": ["fetch", ["resize", "tag"], "publish"],
    "steps": {"tag": {"dependsOn": ["resize"]}, "publish": {"compensate": "unpublish"}, "unpublish": {}},
    "branch": {"publish": [{"when": "result.again == true", "goto": "fetch", "maxIterations": 3}]},
}


def test_each_position_is_a_column_and_a_parallel_group_stacks_in_it() -> None:
    graph = layout(compile_workflow(SPEC))
    fetch, resize, tag, publish = (graph.node(s) for s in ("fetch", "resize", "tag", "publish"))
    assert fetch and resize and tag and publish
    assert fetch.x < resize.x == tag.x < publish.x
    assert resize.y < tag.y


def test_edges_join_positions_depends_on_and_jumps() -> None:
    graph = layout(compile_workflow(SPEC))
    kinds = {(e.source, e.target): e.kind for e in graph.edges}
    assert kinds[("fetch", "resize")] == "next"
    assert kinds[("tag", "publish")] == "next"
    assert kinds[("resize", "tag")] == "depends"
    assert kinds[("publish", "fetch")] == "jump"


def test_a_jump_the_history_took_is_marked_with_its_count() -> None:
    graph = layout(compile_workflow(SPEC), jumps_taken={("publish", "fetch"): 2})
    (jump,) = [e for e in graph.edges if e.kind == "jump"]
    assert jump.taken == 2


def test_handlers_sit_on_a_row_of_their_own_below_the_timeline() -> None:
    graph = layout(compile_workflow(SPEC))
    handler = graph.node("unpublish")
    assert handler is not None and handler.handler
    assert handler.y > max(n.y for n in graph.nodes if not n.handler)


def test_steps_take_the_phase_the_execution_gives_them() -> None:
    graph = layout(compile_workflow(SPEC), phases={"fetch": "Succeeded", "resize": "Running"})
    fetch, resize, publish = graph.node("fetch"), graph.node("resize"), graph.node("publish")
    assert fetch and fetch.css == "phase-succeeded"
    assert resize and resize.css == "phase-running"
    assert publish and publish.css == "phase-none"


def test_every_node_fits_inside_the_drawing() -> None:
    graph = layout(compile_workflow(SPEC))
    assert all(n.x + 150 <= graph.width and n.y + 36 <= graph.height for n in graph.nodes)


def test_a_long_step_name_is_cut_in_its_box_but_kept_whole_as_its_step() -> None:
    name = "a-very-long-step-name-that-goes-on"
    graph = layout(compile_workflow({"timeline": [name]}))
    node = graph.node(name)
    assert node is not None and node.label.endswith("…") and len(node.label) <= 18 and node.step == name


def test_a_code_workflow_is_drawn_as_the_chain_of_steps_it_reached() -> None:
    graph = layout_reached([("charge", "Succeeded"), ("ship", "Running")])
    assert [n.step for n in graph.nodes] == ["charge", "ship"]
    assert [(e.source, e.target) for e in graph.edges] == [("charge", "ship")]
