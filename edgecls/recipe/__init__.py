"""Recipes: YAML files that name the data, the model and the training schedule."""
from edgecls.recipe.loader import (diff_recipes, list_recipes, load_recipe, recipe_from_dict, recipe_to_yaml,
                                   save_recipe)
from edgecls.recipe.schema import Recipe

__all__ = ["Recipe", "load_recipe", "recipe_from_dict", "save_recipe", "recipe_to_yaml", "list_recipes",
           "diff_recipes"]
