"""The command language, in one place: the words, what an expression means, how it is said, and
how a spoken or typed command becomes expressions. No ROS imports; the data generator, the node,
the demo and the speech node all use it.

* ``vocabulary``: the words (object nouns, colours, sizes, generic nouns, ordinals, place words);
* ``semantics``: structured forms and which objects of a scene they refer to (``select``,
  ``resolve``, ``ablate``);
* ``grammar``: templates from forms to text and back (``realise``, ``parse``), and the
  forms that describe an object (``candidates``, ``generate``);
* ``flip``: the same expression in the horizontally mirrored image (form, objects, text);
* ``parser``: a command as people say it -> expressions, stop, or invalid (``parse_command``);
* ``prompt``: the recogniser prompt built from the vocabulary (``initial_prompt``).

Import the module you need (``from refseg_ros.language.parser import parse_command``); this
package imports nothing, so the parser stays free of numpy.
"""
