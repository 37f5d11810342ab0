"""adieyal's comfyui-dynamicprompts, under the pack's class names, inputs and outputs, running the
Dynamic Prompts template language ({a|b} variants, {2$$a|b|c} ranges, __wildcards__, ${variables})
with the `dynamicprompts` library the pack wraps (PyPI; repo adieyal/dynamicprompts, read at 0.31.0).

Read from adieyal/comfyui-dynamicprompts: nodes/__init__.py at 50f720d057ca36977bfac6a116e08e25f8bbb17d
(NODE_CLASS_MAPPINGS), nodes/sampler.py at 66f6ff2d224bb86cd1e62bef1f571a6d04df04c8 (the newest the
store holds: text, seed, autorefresh; the prompt generator kept per node and reseeded each run),
nodes/random.py and nodes/combinatorial.py as the store's files 31806424616 and 31832610971 hold them
(a SamplingContext with SamplingMethod.RANDOM / COMBINATORIAL over the wildcards folder),
nodes/output_node.py at 83db0a983459978161adf764160e7d9aea186ec9, nodes/string.py at
ebca20a8f020412902d0ef92b7eb09ecd8aa8005, nodes/jinja.py, nodes/feeling_lucky.py and
nodes/magicprompt.py at 5da73bbe60af88c3728b37f8534e3293ac705210 / 50f720d057ca36977bfac6a116e08e25f8bbb17d.

Nodes: DPRandomGenerator, DPCombinatorialGenerator, DPOutput, DPMultilineString.
Left out, refused by name (comfy_format.CUSTOM_PACKS and LEFT_OUT say why):
- DPJinja: the library renders the template with a plain jinja2.Environment, not jinja2's sandbox,
  so a user's template could reach Python objects (a template must never run code here);
- DPFeelingLucky: it asks a web service (lexica.art) for prompts;
- DPMagicPrompt: it downloads a GPT-2 prompt model from the Hugging Face hub.
The pack has no max_prompts input (the combinatorial node gives one prompt a run, in turn).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import random
import threading
from collections import OrderedDict

from graphflow.api import STRING, Choice, ComfyAlias, Int, Node, NodeInputError, Text, check_interrupted, \
    current_node_id, show, warn
from nodes.pack_nodes_impact import _wildcard_files, wildcards_state
from nodes.sampling import SEED_MAX
from nodes.strings import _fits

COMFY_PACK = "comfyui-dynamicprompts"  # the custom node pack this module's ComfyUI classes come from

WILDCARD_EXTENSIONS = (".txt", ".json", ".yaml")  # the library's wildcard files (it skips .yml)
MAX_TEMPLATE = 20_000  # characters of text: the library's parser takes about 1 s per 4,000 of dense syntax
# Work a run may do, counted in the library's steps (a generator made for one part of the
# template: some 50,000 to 80,000 a second) plus PARSE_STEPS per character of each wildcard line
# it parses (the template itself is held to MAX_TEMPLATE). A combinatorial range whose choices
# come out equal ({6$$...} of variants giving the same words) otherwise searches every
# combination for one that differs, for hours.
MAX_STEPS = 200_000
PARSE_STEPS = 10
MAX_NODES_KEPT = 1000  # combinatorial nodes whose place in their list is kept (the oldest dropped)


class _TooMuchWork(Exception):
    pass


@dataclasses.dataclass
class _Budget:
    left: int = MAX_STEPS

    def spend(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise _TooMuchWork
        if self.left % 10_000 < steps:  # now and then: a long run can be stopped
            check_interrupted()


@functools.cache
def _counted_context():
    """The library's SamplingContext, counting its work against a _Budget (its sub-contexts are
    made by dataclasses.replace, so they count too)."""
    from dynamicprompts.sampling_context import SamplingContext

    @dataclasses.dataclass(frozen=True)
    class CountedContext(SamplingContext):
        budget: _Budget = dataclasses.field(default_factory=_Budget)

        def generator_from_command(self, command):
            self.budget.spend(1)
            return super().generator_from_command(command)

        def sample_prompts(self, prompt, num_prompts=None):
            if isinstance(prompt, str):
                self.budget.spend(PARSE_STEPS * len(prompt))
            return super().sample_prompts(prompt, num_prompts)

    return CountedContext


# -- wildcards -------------------------------------------------------------------------------------

_manager: tuple[str, object] = ("", None)  # (wildcards_state, WildcardManager) of the last build
_manager_lock = threading.Lock()


def _collections(base, path) -> dict:
    """{wildcard name: collection} of one file, named as the library's folder walk names them: a
    .txt file by its path in the folder without extension, a .json / .yaml file's keys under its
    folder's path."""
    from dynamicprompts.wildcards.collection import WildcardTextFile
    from dynamicprompts.wildcards.collection.structured import parse_structured_file

    relative = path.relative_to(base)
    if path.suffix == ".txt":
        return {relative.with_suffix("").as_posix(): WildcardTextFile(path)}
    prefix = "" if relative.parent.as_posix() == "." else relative.parent.as_posix() + "/"
    try:
        return {prefix + name: collection for name, collection in parse_structured_file(path)}
    except Exception as e:  # the library's folder walk skips an unreadable file with a warning too
        warn(f"wildcard file {relative.as_posix()} skipped: {e}")
        return {}


@functools.cache
def _folder_wildcards():
    """The library's WildcardManager, telling the user (warn) of a wildcard no file has, which the
    library leaves in the prompt as written. The library's own log lines for it (a traceback for
    a name with '..') are left out: the warning says it."""
    from dynamicprompts.wildcards import WildcardManager

    logging.getLogger("dynamicprompts").setLevel(logging.ERROR)

    class FolderWildcards(WildcardManager):
        def get_values(self, wildcard):
            values = super().get_values(wildcard)
            if not values:
                warn(f"no wildcard file or key in the wildcards folders is named {wildcard!r} (a name "
                     f"with '..' is never looked up): __{wildcard}__ is left in the prompt as written")
            return values

    return FolderWildcards


def wildcard_manager():
    """The library's WildcardManager over the files of graphflow's wildcards model folders (the
    Impact Pack nodes' folders), the first folder (the user's) winning a name. It is given the
    files found by graphflow's folder walk, not a folder to walk, so it knows only files inside
    those folders (and the library refuses a name with '..'). Built anew when a file changes."""
    global _manager
    state = wildcards_state(WILDCARD_EXTENSIONS)
    with _manager_lock:
        if _manager[0] != state or _manager[1] is None:
            found: dict = {}
            for base, path in reversed(list(_wildcard_files(WILDCARD_EXTENSIONS))):
                found.update(_collections(base, path))
            _manager = (state, _folder_wildcards()(root_map={"": [found]}))
        return _manager[1]


# -- sampling ----------------------------------------------------------------------------------------


def _sampling_context(method: str, rand: random.Random, manager, budget: _Budget):
    from dynamicprompts.enums import SamplingMethod

    return _counted_context()(default_sampling_method=SamplingMethod[method], wildcard_manager=manager,
                              rand=rand, budget=budget)


def _checked_template(text: str) -> None:
    if len(text) > MAX_TEMPLATE:
        raise NodeInputError("text", f"the template is {len(text):,} characters long; the limit is "
                                     f"{MAX_TEMPLATE:,} (the template parser is slow on long texts)")


def _next_prompt(prompts) -> str:
    """next(prompts) as text, the library's errors as errors naming text."""
    from pyparsing import ParseBaseException

    try:
        prompt = str(next(prompts))
    except ParseBaseException as e:
        raise NodeInputError("text", f"not a Dynamic Prompts template: {e}") from None
    except _TooMuchWork:
        raise NodeInputError("text", f"the template takes more than {MAX_STEPS:,} sampling steps for one "
                                     f"prompt (a combinatorial range whose choices come out the same, or "
                                     f"wildcards that nest very deep)") from None
    except RecursionError:
        raise NodeInputError("text", "the template nests too deep, or a variable or wildcard refers to "
                                     "itself") from None
    except (KeyError, ValueError) as e:  # an undefined ${variable}, a bad wildcard name or range
        raise NodeInputError("text", str(e.args[0] if e.args else e)) from None
    _fits(len(prompt), "text")
    return prompt


def _prompts(context, text: str):
    """The library's prompt generator for text, parsed on the first next() (parsed here, so that
    the template's parse is not counted against the budget: MAX_TEMPLATE bounds it)."""
    from dynamicprompts.parser.parse import parse

    yield from context.sample_prompts(parse(text, parser_config=context.parser_config))


def random_prompt(text: str, seed: int) -> str:
    """The pack's DPRandomGenerator: one prompt of the library's random sampling, drawn with
    random.Random(seed) when seed > 0 (RandomPromptGenerator(seed=seed)'s first prompt), with a
    fresh unseeded one when seed is 0."""
    if text.strip() == "":
        return ""
    _checked_template(text)
    rand = random.Random(seed) if seed > 0 else random.Random()
    context = _sampling_context("RANDOM", rand, wildcard_manager(), _Budget(MAX_STEPS))
    return _next_prompt(_prompts(context, text))


@dataclasses.dataclass
class _Cycle:
    """A combinatorial node's place in its list of prompts."""
    text: str
    manager: object
    rand: random.Random
    budget: _Budget
    context: object
    prompts: object = None


_cycles: OrderedDict[tuple, _Cycle] = OrderedDict()  # (node type, node id) -> its place; kept while graphflow runs
_cycles_lock = threading.Lock()


def _cycle(key: tuple, text: str, manager) -> _Cycle:
    with _cycles_lock:
        cycle = _cycles.pop(key, None)
        if cycle is None or cycle.text != text or cycle.manager is not manager:
            rand, budget = random.Random(), _Budget()
            cycle = _Cycle(text, manager, rand, budget, _sampling_context("COMBINATORIAL", rand, manager, budget))
        _cycles[key] = cycle
        while len(_cycles) > MAX_NODES_KEPT:
            _cycles.popitem(last=False)
        return cycle


def combinatorial_prompt(key: tuple, text: str, seed: int) -> str:
    """The pack's DPCombinatorialGenerator: each run the next prompt of the library's
    combinatorial sampling of text, starting again after the last; a changed text (or changed
    wildcard files) starts from the first. seed > 0 reseeds the node's random draws (its {~a|b}
    random parts) before each prompt, as the pack does."""
    if text.strip() == "":
        return ""
    _checked_template(text)
    cycle = _cycle(key, text, wildcard_manager())
    if seed > 0:
        cycle.rand.seed(seed)
    cycle.budget.left = MAX_STEPS
    for _ in range(2):  # after the last prompt, once more from the first
        if cycle.prompts is None:
            cycle.prompts = _prompts(cycle.context, text)
        try:
            return _next_prompt(cycle.prompts)
        except StopIteration:
            cycle.prompts = None
        except NodeInputError:
            cycle.prompts = None  # a generator that raised is spent
            raise
    return ""  # a template that makes no prompt at all, as the pack gives


# -- nodes ---------------------------------------------------------------------------------------------


class DynamicPromptsRandom(Node):
    """Random Prompts (Dynamic Prompts): one prompt drawn from a template each run. {a|b|c} picks
    one, {2$$a|b|c} two different ones (joined by ","), {1-3$$ and $$a|b|c} one to three joined
    by " and ", {0.5::a|2::b} weighs them, __name__ picks a line of the wildcard file name.txt
    under the models' wildcards folder (or the list under the key name of a .json / .yaml file
    there; __shapes/*__ any of the folder shapes), ${name={a|b}} and ${name} are variables,
    __name(var=x)__ passes one on. With seed above 0 the prompt is the library's
    RandomPromptGenerator's with that seed (the pack reseeds its generator each run); with seed 0
    a new draw each run. autorefresh changes nothing (the pack re-runs the node whatever it says).

    An empty text gives ""; bad template syntax, an undefined variable and a template that is
    longer than 20,000 characters or needs more than 200,000 sampling steps are refused naming
    text. A wildcard name that no file has is left in the prompt as written, as the library does,
    with a warning."""
    category = "Dynamic Prompts"
    display_name = "Random Prompts"
    text: str = Text("", multiline=True)
    seed: int = Int(0, min=0, max=SEED_MAX)
    autorefresh: str = Choice(("Yes", "No"), "No")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("DPRandomGenerator",))

    @classmethod
    def fingerprint(cls, seed=0, **widgets):
        # seed 0 draws anew each run; a seed's prompt changes only with the wildcard files
        return random.random() if seed == 0 else wildcards_state(WILDCARD_EXTENSIONS)

    def run(self):
        return random_prompt(self.text, self.seed)


class DynamicPromptsCombinatorial(Node):
    """Combinatorial Prompts (Dynamic Prompts): every prompt a template makes, one each run, in
    the library's order ({a|b} {c|d}: "a c", "a d", "b c", "b d"), starting again after the last
    (each node keeps its place while graphflow runs; a changed text or wildcard file starts it
    from the first). Same template language as Random Prompts; a {~a|b} part is drawn at random,
    with the seed reset before each prompt when seed is above 0. autorefresh changes nothing, as
    in the pack. The pack has no prompt count: queue the workflow as many times as you want prompts.

    An empty text gives ""; bad syntax, an undefined variable, a text over 20,000 characters and
    one prompt needing more than 200,000 sampling steps are refused naming text."""
    category = "Dynamic Prompts"
    display_name = "Combinatorial Prompts"
    text: str = Text("", multiline=True)
    seed: int = Int(0, min=0, max=SEED_MAX)
    autorefresh: str = Choice(("Yes", "No"), "No")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("DPCombinatorialGenerator",))

    @classmethod
    def fingerprint(cls, **widgets):
        return random.random()  # the next prompt each run

    def run(self):
        return combinatorial_prompt((self.node_type, current_node_id()), self.text, self.seed)


class DynamicPromptsOutput(Node):
    """OutputString (Dynamic Prompts): shows a text on the node, as the pack's DPOutput does."""
    category = "utils"
    display_name = "OutputString"
    output_node = True
    string: str = Text("")
    comfy = ComfyAlias(("DPOutput",))

    def run(self):
        show(string=[self.string])


class DynamicPromptsMultilineString(Node):
    """Multiline String (Dynamic Prompts): gives its text as written; the editor does not resolve
    {a|b} in it (the pack turns that off)."""
    category = "utils"
    display_name = "Multiline String"
    string: str = Text("", multiline=True)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("DPMultilineString",))

    def run(self):
        return self.string
